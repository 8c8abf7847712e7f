"""Parameter counting shared by the engine's logs, the analysis tools and compression reports."""
import numpy as np
import paddle.nn as nn

__all__ = ["count_params"]


def count_params(model: nn.Layer) -> int:
    """Trainable parameters (BN running statistics are not trainable and not counted)."""
    return int(sum(int(np.prod(p.shape)) for p in model.parameters() if p.trainable))
