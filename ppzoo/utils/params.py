"""Parameter counting shared by the engine's logs, the analysis tools and compression reports."""
import numpy as np
import paddle.nn as nn
from paddle.nn.layer.norm import _BatchNormBase

__all__ = ["count_params"]


def count_params(model: nn.Layer) -> int:
    """Weights the model holds: every parameter except BatchNorm's running statistics.

    Frozen weights count (a product-quantized layer's rebuilt weight is frozen during its
    fine-tune but still a weight of the model; a file's compact coding shows in its bytes,
    not here), so ``trainable`` is not the test."""
    stats = set()
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, _BatchNormBase):
            stats.update(id(p) for p in (layer._mean, layer._variance) if p is not None)
    return int(sum(int(np.prod(p.shape)) for p in model.parameters() if id(p) not in stats))
