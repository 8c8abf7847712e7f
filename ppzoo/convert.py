"""Convert PaddleClas ImageNet weights (``.pdparams``) to ppzoo models.

The mapping of each family lives in its model file, as timm's ``checkpoint_filter_fn``
does: ``ppzoo/models/<family>.py`` defines ``paddleclas_keys(model)`` (PaddleClas's
tensor names in the order our model creates its tensors) and
``checkpoint_filter_fn(state, model, source)``, which pairs the two and checks every name
and shape (``ppzoo.models._paddleclas.map_in_order``). This module only finds the
function through the model's class, fixes the number of classes and writes the file, so
a new family needs no edit here. Families with PaddleClas weights today: AlexNet
(``alexnet_single``), MobileNetV1, MobileNetV2, SqueezeNet and ResNet-18/34/50.

Not only a renaming:

* ``MobileNetV2``, ``SqueezeNet`` and ``ResNet`` weights need the variant's
  ``layout="paddleclas"`` (registered as its own ``<name>.paddleclas`` entry; see each
  family's docs page for what differs).
* PaddleClas's AlexNet and SqueezeNet use ``Dropout(mode="downscale_in_infer")``, which
  scales the next layer's input by (1 - p) at inference; ours scales during training.
  The filter multiplies the weights after the dropout by (1 - p) so both agree in both modes.
"""
import sys
from typing import Dict, Tuple

import numpy as np

from .registry import create_model, list_models, model_arguments, model_info, resolve_name
from .utils.weights import WeightsError, read_state_dict, save_weights

__all__ = ["convert_paddleclas", "convert_paddleclas_file", "paddleclas_keys", "convertible_models"]


def convertible_models():
    """Registry names that PaddleClas weights convert to."""
    return [n for n in list_models() if model_info(n).paddleclas_names]


def _family(name: str):
    """(registry name with PaddleClas's layout, the options that build that layout under
    ``name``, the model, its family module). The untagged name of a family whose PaddleClas
    layout is its own entry (``mobilenet_v2_x1_0`` -> ``mobilenet_v2_x1_0.paddleclas``)
    converts into that layout."""
    key, layout = resolve_name(name), {}
    if not model_info(key).paddleclas_names and f"{key}.paddleclas" in list_models():
        tagged_fixed, fixed = model_arguments(f"{key}.paddleclas")[1], model_arguments(key)[1]
        layout = {k: v for k, v in tagged_fixed.items() if fixed.get(k) != v}
        key = f"{key}.paddleclas"
    if not model_info(key).paddleclas_names:
        raise ValueError(f"PaddleClas publishes no weights that fit '{key}'; convertible models: "
                         f"{', '.join(convertible_models())}")
    model = create_model(key)
    module = sys.modules[type(model).__module__]
    if not hasattr(module, "checkpoint_filter_fn"):  # a registration bug, not user input
        raise RuntimeError(f"internal: {module.__name__} lists PaddleClas names but has no checkpoint_filter_fn")
    return key, layout, model, module


def paddleclas_keys(name: str):
    """PaddleClas's tensor names for ``name``, in the order of our model's state dict."""
    _, _, model, module = _family(name)
    return list(module.paddleclas_keys(model))


def _classes(model, state: Dict[str, np.ndarray]) -> int:
    """Number of classes of the classifier in a state dict under our names (bias length)."""
    head = {id(p) for p in model.get_classifier().parameters()}
    names = [n for n, p in model.named_parameters() if id(p) in head]
    bias = next((n for n in names if n.endswith("bias")), None)
    return int(np.shape(state[bias])[0]) if bias else int(np.shape(state[names[0]])[-1])


def convert_paddleclas(state: Dict[str, np.ndarray], name: str, source: str = "state dict"
                       ) -> Tuple[Dict[str, np.ndarray], Dict]:
    """Map a PaddleClas state dict onto the ppzoo model ``name``.

    Args:
        state: PaddleClas tensors by name.
        name: ppzoo registry name (``mobilenet_v1_x0_5``, ``resnet50``, ``squeezenet1_1``)
            or the PaddleClas name (``MobileNetV1_x0_5``, ``ResNet50``).
        source: what to call the weights in error messages.

    Returns:
        ``(ppzoo state dict, model kwargs)``: build the model with
        ``create_model(name, **kwargs)`` (``num_classes`` and, where PaddleClas's layout
        differs, ``layout="paddleclas"``) and load the state into it.
    """
    key, layout, model, module = _family(name)
    converted = module.checkpoint_filter_fn(state, model, source)
    classes = _classes(model, converted)
    if classes != model.num_classes:
        model = create_model(key, num_classes=classes)
    for our_key, tensor in model.state_dict().items():  # the classifier, now that its size is known
        if tuple(np.shape(converted[our_key])) != tuple(tensor.shape):
            raise WeightsError(f"{source}: '{our_key}' of {key} needs {list(tensor.shape)}, the converted tensor "
                               f"has {list(np.shape(converted[our_key]))}")
    kwargs = dict(layout, num_classes=classes)
    return converted, kwargs


def convert_paddleclas_file(name: str, src: str, dst: str) -> Dict:
    """Convert the PaddleClas weight file ``src`` for model ``name`` and write ``dst``
    atomically. Returns the model kwargs the weights need."""
    converted, kwargs = convert_paddleclas(read_state_dict(src), name, source=src)
    save_weights(converted, dst)  # .pdparams or .safetensors, by dst's suffix
    return kwargs
