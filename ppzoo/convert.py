"""Convert PaddleClas ImageNet weights (``.pdparams``) to ppzoo models.

PaddleClas publishes weights for ``MobileNetV1*``, ``MobileNetV2*`` and ``AlexNet``. Our
models create their layers in the same order as PaddleClas's, so each family below lists
PaddleClas's tensor names in that order and the conversion pairs them with ours one by
one, checking every name and shape. Two things are not a renaming:

* ``MobileNetV2`` weights need our ``layout="paddleclas"`` (an expansion conv in every
  block, unrounded widths).
* PaddleClas's AlexNet uses ``Dropout(mode="downscale_in_infer")``, which halves the
  inputs of fc6 and fc7 at inference; ours scales during training instead. Multiplying
  the fc6 and fc7 weights by (1 - p) makes the two identical in both modes.
"""
from typing import Dict, Iterator, Tuple

import numpy as np
import paddle

from .utils.fileio import atomic_write
from .models.mobilenet_v1 import BLOCKS as MOBILENET_V1_BLOCKS
from .models.mobilenet_v2 import SETTINGS as MOBILENET_V2_SETTINGS
from .registry import create_model, list_models, model_arguments, model_info, resolve_name
from .utils.weights import WeightsError, read_state_dict

__all__ = ["convert_paddleclas", "convert_paddleclas_file", "SUPPORTED_FAMILIES"]

_BN = ("weight", "bias", "_mean", "_variance")
ALEXNET_DROPOUT = 0.5  # PaddleClas AlexNetDY: Dropout(p=0.5, mode="downscale_in_infer")


def _conv_bn(prefix: str, conv: str, bn: str) -> Iterator[str]:
    yield f"{prefix}.{conv}.weight"
    for s in _BN:
        yield f"{prefix}.{bn}.{s}"


def _mobilenet_v1_keys() -> Iterator[str]:  # ppcls/arch/backbone/legendary_models/mobilenet_v1.py
    yield from _conv_bn("conv", "conv", "bn")
    for i in range(len(MOBILENET_V1_BLOCKS)):
        yield from _conv_bn(f"blocks.{i}.depthwise_conv", "conv", "bn")
        yield from _conv_bn(f"blocks.{i}.pointwise_conv", "conv", "bn")
    yield from ("fc.weight", "fc.bias")


def _mobilenet_v2_keys() -> Iterator[str]:  # ppcls/arch/backbone/model_zoo/mobilenet_v2.py
    yield from _conv_bn("conv1", "_conv", "_batch_norm")
    for stage, (_, _, n, _) in enumerate(MOBILENET_V2_SETTINGS, start=2):
        for j in range(n):
            block = f"conv{stage}._first_block" if j == 0 else f"conv{stage}.conv{stage}_{j + 1}"
            for part in ("_expand_conv", "_bottleneck_conv", "_linear_conv"):
                yield from _conv_bn(f"{block}.{part}", "_conv", "_batch_norm")
    yield from _conv_bn("conv9", "_conv", "_batch_norm")
    yield from ("out.weight", "out.bias")


def _alexnet_keys() -> Iterator[str]:  # ppcls/arch/backbone/model_zoo/alexnet.py
    for i in range(1, 6):
        prefix = f"_conv{i}._conv" if i in (1, 2, 5) else f"_conv{i}"
        yield from (f"{prefix}.weight", f"{prefix}.bias")
    for i in (6, 7, 8):
        yield from (f"_fc{i}.weight", f"_fc{i}.bias")


# family: (PaddleClas tensor names in our order, the classifier's PaddleClas name)
SUPPORTED_FAMILIES = {
    "mobilenet_v1": (_mobilenet_v1_keys, "fc.weight"),
    "mobilenet_v2": (_mobilenet_v2_keys, "out.weight"),
    "alexnet": (_alexnet_keys, "_fc8.weight"),
}


def convert_paddleclas(state: Dict[str, np.ndarray], name: str, source: str = "state dict"
                       ) -> Tuple[Dict[str, np.ndarray], Dict]:
    """Map a PaddleClas state dict onto the ppzoo model ``name``.

    Args:
        state: PaddleClas tensors by name.
        name: ppzoo registry name (``mobilenet_v1_x0_5``, ``mobilenet_v2_x1_0``,
            ``alexnet_single``) or the PaddleClas name (``MobileNetV1_x0_5``).
        source: what to call the weights in error messages.

    Returns:
        ``(ppzoo state dict, model kwargs)``: build the model with
        ``create_model(name, **kwargs)`` (``num_classes`` and, for MobileNetV2,
        ``layout="paddleclas"``) and load the state into it.
    """
    key, layout = resolve_name(name), {}
    if not model_info(key).paddleclas_names and f"{key}.paddleclas" in list_models():
        # the untagged name of a family whose PaddleClas layout is its own entry: convert into
        # that layout and return the options that build it under the untagged name
        tagged_fixed, fixed = model_arguments(f"{key}.paddleclas")[1], model_arguments(key)[1]
        layout = {k: v for k, v in tagged_fixed.items() if fixed.get(k) != v}
        key = f"{key}.paddleclas"
    info = model_info(key)
    if info.family not in SUPPORTED_FAMILIES or not info.paddleclas_names:
        have = [n for f in SUPPORTED_FAMILIES for n in _paddleclas_models(f)]
        raise ValueError(f"PaddleClas publishes no weights that fit '{key}'; convertible models: {', '.join(have)}")
    keys_fn, classifier = SUPPORTED_FAMILIES[info.family]
    if classifier not in state:
        raise WeightsError(f"{source} is not a PaddleClas {info.paddleclas_names[0]} state dict: "
                           f"tensor '{classifier}' not found (first tensors: {', '.join(list(state)[:3])})")
    kwargs = dict(layout, num_classes=int(np.shape(state[classifier])[1]))
    model = create_model(key, **kwargs)
    theirs = list(keys_fn())
    ours = model.state_dict()
    assert len(theirs) == len(ours), f"internal: {len(theirs)} PaddleClas names for {len(ours)} tensors of {key}"
    unexpected = sorted(set(state) - set(theirs))
    if unexpected:
        raise WeightsError(f"{source} has {len(unexpected)} tensors a PaddleClas {info.paddleclas_names[0]} does "
                           f"not have (first: '{unexpected[0]}'): is it the right model?")
    converted = {}
    for our_key, their_key in zip(ours, theirs):
        if their_key not in state:
            raise WeightsError(f"{source}: PaddleClas tensor '{their_key}' (for our '{our_key}') is missing")
        value = np.asarray(state[their_key])
        if tuple(value.shape) != tuple(ours[our_key].shape):
            raise WeightsError(f"{source}: tensor '{their_key}' has shape {list(value.shape)}, but '{our_key}' of "
                               f"{key} needs {list(ours[our_key].shape)}: was it saved for another width?")
        if info.family == "alexnet" and their_key in ("_fc6.weight", "_fc7.weight"):
            value = value * (1.0 - ALEXNET_DROPOUT)  # fold downscale_in_infer into the weights
        converted[our_key] = value
    return converted, kwargs


def _paddleclas_models(family: str):
    return [n for n in list_models() if model_info(n).family == family and model_info(n).paddleclas_names]


def convert_paddleclas_file(name: str, src: str, dst: str) -> Dict:
    """Convert the PaddleClas weight file ``src`` for model ``name`` and write ``dst``
    atomically. Returns the model kwargs the weights need."""
    converted, kwargs = convert_paddleclas(read_state_dict(src), name, source=src)
    atomic_write(dst, lambda tmp: paddle.save({k: paddle.to_tensor(v) for k, v in converted.items()}, tmp))
    return kwargs
