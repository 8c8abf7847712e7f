"""Reading weight files and loading them into a model, with errors that say what is wrong."""
import os
from typing import Dict, List, Union

import numpy as np
import paddle

__all__ = ["read_state_dict", "load_weights", "WeightsError"]


class WeightsError(ValueError):
    """A weight file is missing, unreadable, or does not fit the model."""


def _resolve(path: str) -> str:
    """Accept ``x.pdparams`` or the PaddleClas-style prefix ``x``."""
    path = os.fspath(path)
    if not os.path.isfile(path) and os.path.isfile(path + ".pdparams"):
        path += ".pdparams"
    if not os.path.isfile(path):
        raise WeightsError(f"weight file not found: {path} (expected a .pdparams file or its prefix)")
    return path


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Read a ``.pdparams`` file (a state dict, or a ppzoo checkpoint holding one under
    ``"model"``) as numpy arrays."""
    path = _resolve(path)
    try:
        state = paddle.load(path, return_numpy=True)
    except Exception as e:  # paddle raises many types for corrupt files
        raise WeightsError(f"cannot read weight file {path}: {type(e).__name__}: {e}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} holds no state dict (found {type(state).__name__})")
    return state


def _submodel_weights(model, own: Dict, weights: Dict) -> Dict:
    """The tensors of ``model`` inside a file that holds several models under name prefixes
    (a distillation run's ``Student.conv1.weight``, ``Student1...``; PaddleClas's also
    ``Teacher...``): those under ``model.weights_prefix`` (set on the model a
    DistillationModel deploys), else the one prefix whose tensors fit. Other files pass."""
    if any(k in weights for k in own):
        return weights
    prefixes = sorted({k.split(".", 1)[0] + "." for k in weights if "." in k})
    wanted = getattr(model, "weights_prefix", None)
    fitting = [p for p in prefixes if all(p + k in weights for k in own)]
    chosen = wanted if wanted in fitting else (fitting[0] if len(fitting) == 1 and wanted is None else None)
    if chosen is None:
        if wanted and prefixes:
            raise WeightsError(f"the weight file holds models {', '.join(p[:-1] for p in prefixes)}, but not "
                               f"'{wanted[:-1]}' (Arch.infer_model_name) with this architecture")
        return weights
    return {k[len(chosen):]: v for k, v in weights.items() if k.startswith(chosen)}


def load_weights(model: paddle.nn.Layer, weights: Union[str, Dict], skip_mismatched_classifier: bool = False,
                 source: str = None) -> List[str]:
    """Load a state dict (or a file) into ``model``; every tensor must fit.

    Args:
        model: the model to load into.
        weights: path of a ``.pdparams`` file (or its prefix) or a state dict.
        skip_mismatched_classifier: keep the model's own classifier when the file's has
            another number of classes (fine-tuning); the skipped names are returned.
            A file of several models under name prefixes (a distillation run's) gives
            the model its own (``model.weights_prefix``, or the one prefix that fits).
        source: name of the weights in error messages. Default: the path.

    Raises:
        WeightsError naming the first missing, unexpected or mismatching tensor and both shapes.
    """
    if isinstance(weights, (str, os.PathLike)):
        source = source or _resolve(weights)
        weights = read_state_dict(weights)
    source = source or "state dict"
    own = model.state_dict()
    weights = _submodel_weights(model, own, weights)
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} model tensors missing from the file (first: '{missing[0]}')")
        if unexpected:
            detail.append(f"{len(unexpected)} file tensors unknown to the model (first: '{unexpected[0]}')")
        raise WeightsError(f"{source} does not fit {type(model).__name__}: {'; '.join(detail)}. Was it saved "
                           "from another model? PaddleClas weights need tools/convert_weights.py first.")
    head = {id(p) for p in model.get_classifier().parameters()} if hasattr(model, "get_classifier") else set()
    classifier = {n for n, p in model.named_parameters() if id(p) in head}
    skipped, state = [], {}
    for name, tensor in own.items():
        value = weights[name]
        if tuple(value.shape) != tuple(tensor.shape):
            if not (skip_mismatched_classifier and name in classifier):
                raise WeightsError(f"{source}: tensor '{name}' has shape {list(value.shape)} in the file but "
                                   f"{list(tensor.shape)} in the model")
            skipped.append(name)
            value = tensor  # keep the model's own classifier
        state[name] = value
    model.set_state_dict(state)
    return skipped
