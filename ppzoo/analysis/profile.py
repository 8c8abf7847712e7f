"""Per-layer profile of a model from one forward pass.

Convention (the one of ``../shared/reference/targets.md`` and of the papers' tables):

* **params**: trainable weights, BN scale and shift included, BN running statistics not.
* **MAdds**: multiply-adds of ``Conv2D`` (Cout * Hout * Wout * Cin/groups * k * k) and
  ``Linear`` (in * out) layers only, at batch 1; biases, BN, activations and pooling are
  free. The papers call this "Mult-Adds", TF-slim "MACs", the ShuffleNet papers "FLOPs";
  ``paddle.flops`` also counts BN, activations and pooling, and PaddleClas's "FLOPs" are
  about twice these numbers.
"""
from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np
import paddle
import paddle.nn as nn

__all__ = ["LayerStats", "ModelStats", "count_params", "count_madds", "profile_model"]


@dataclass
class LayerStats:
    """Cost of one leaf layer for one image."""

    name: str
    type: str
    input_shape: List[int]
    output_shape: List[int]
    params: int
    madds: int


@dataclass
class ModelStats:
    """Totals over all leaf layers plus the per-layer list, in execution order."""

    input_size: Sequence[int]
    params: int
    madds: int
    layers: List[LayerStats] = field(default_factory=list)


def count_params(model: nn.Layer) -> int:
    """Trainable parameters (BN running statistics are not trainable and not counted)."""
    return int(sum(int(np.prod(p.shape)) for p in model.parameters() if p.trainable))


def _layer_madds(layer: nn.Layer, inputs, output) -> int:
    if isinstance(layer, nn.Conv2D):
        _, c_out, h, w = output.shape
        k = int(np.prod(layer.weight.shape[2:]))
        return c_out * h * w * layer.weight.shape[1] * k  # weight is [Cout, Cin/groups, kh, kw]
    if isinstance(layer, nn.Linear):
        rows = int(np.prod(output.shape[:-1]))
        return rows * layer.weight.shape[0] * layer.weight.shape[1]
    return 0


def profile_model(model: nn.Layer, input_size: Sequence[int] = (3, 224, 224)) -> ModelStats:
    """Run one image of ``input_size`` (C, H, W) through ``model`` in eval mode and record
    every leaf layer that ran."""
    records: List[LayerStats] = []
    hooks = []

    def make_hook(name):
        def hook(layer, inputs, output):
            x = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
            own = int(sum(int(np.prod(p.shape)) for p in layer.parameters(include_sublayers=False) if p.trainable))
            records.append(LayerStats(name, type(layer).__name__, list(x.shape), list(output.shape), own,
                                      int(_layer_madds(layer, inputs, output))))
        return hook

    for name, layer in model.named_sublayers():
        if not layer.sublayers():
            hooks.append(layer.register_forward_post_hook(make_hook(name)))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, *input_size], dtype="float32"))
    finally:
        for h in hooks:
            h.remove()
        model.train() if was_training else None
    return ModelStats(tuple(input_size), count_params(model), sum(r.madds for r in records), records)


def count_madds(model: nn.Layer, input_size: Sequence[int] = (3, 224, 224)) -> int:
    """Multiply-adds of one image (see the module docstring for the convention)."""
    return profile_model(model, input_size).madds
