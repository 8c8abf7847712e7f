"""Helpers for the families' ``checkpoint_filter_fn``: PaddleClas state dict -> ours.

Each family module that PaddleClas publishes weights for defines
``paddleclas_keys(model)`` (PaddleClas's tensor names, in the order our model creates
its tensors) and ``checkpoint_filter_fn(state, model, source)``, which pairs them with
:func:`map_in_order`. ``ppzoo.convert`` finds the function through the model's module,
so a new family adds its mapping in its own file.
"""
from typing import Dict, Iterable, Iterator, Optional

import numpy as np
import paddle.nn as nn

from ..utils.weights import WeightsError

__all__ = ["map_in_order", "conv_bn_keys", "BN_KEYS"]

BN_KEYS = ("weight", "bias", "_mean", "_variance")


def conv_bn_keys(prefix: str, conv: str, bn: str) -> Iterator[str]:
    """``prefix.conv.weight`` then the four tensors of ``prefix.bn``."""
    yield f"{prefix}.{conv}.weight"
    for s in BN_KEYS:
        yield f"{prefix}.{bn}.{s}"


def map_in_order(state: Dict[str, np.ndarray], model: nn.Layer, theirs: Iterable[str], source: str, arch: str,
                 classifier: str, scale: Optional[Dict[str, float]] = None) -> Dict[str, np.ndarray]:
    """Pair ``theirs`` with ``model.state_dict()`` one by one and check every name and shape.

    The classifier's tensors may have any number of classes (the caller rebuilds the
    model for them); every other shape must match. ``scale`` multiplies named PaddleClas
    tensors (dropout folding). Raises :class:`WeightsError` naming the first tensor that
    is missing, unexpected or of another shape.
    """
    theirs = list(theirs)
    ours = model.state_dict()
    if len(theirs) != len(ours):  # a bug in the family's key list, not bad input
        raise RuntimeError(f"internal: {len(theirs)} PaddleClas names for {len(ours)} tensors of {type(model).__name__}")
    if classifier not in state:
        raise WeightsError(f"{source} is not a PaddleClas {arch} state dict: tensor '{classifier}' not found "
                           f"(first tensors: {', '.join(list(state)[:3])})")
    unexpected = [k for k in state if k not in set(theirs)]
    if unexpected:
        raise WeightsError(f"{source} has {len(unexpected)} tensors a PaddleClas {arch} does not have "
                           f"(first: '{unexpected[0]}'): is it the right model?")
    head = {id(p) for p in model.get_classifier().parameters()}
    head_names = {n for n, p in model.named_parameters() if id(p) in head}
    scale = scale or {}
    converted = {}
    for (our_key, tensor), their_key in zip(ours.items(), theirs):
        if their_key not in state:
            raise WeightsError(f"{source}: PaddleClas tensor '{their_key}' (for our '{our_key}') is missing")
        value = np.asarray(state[their_key])
        if our_key not in head_names and tuple(value.shape) != tuple(tensor.shape):
            raise WeightsError(f"{source}: tensor '{their_key}' has shape {list(value.shape)}, but '{our_key}' of "
                               f"{arch} needs {list(tensor.shape)}: was it saved for another width or depth?")
        converted[our_key] = value * scale[their_key] if their_key in scale else value
    return converted
