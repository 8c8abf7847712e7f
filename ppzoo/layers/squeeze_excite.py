"""Squeeze-and-excitation block (Hu et al., arXiv 1709.01507, Sec. 3, Fig. 1)."""
from typing import Callable, Optional

import paddle.nn as nn

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Layer):
    """Global average pool -> FC C/r -> ReLU -> FC C -> sigmoid -> scale the input channels.

    Squeeze (Sec. 3.1, Eq. 2) summarises each channel by its mean; excitation (Sec. 3.2,
    Eq. 3) maps the C means through a bottleneck of ``C * se_ratio`` units to one gate in
    (0, 1) per channel, which rescales the input (Eq. 4). The two FC layers are 1x1
    convolutions on the pooled 1x1 map (the same weights as Linear layers, no flatten).
    The paper's reduction ratio r = 16 (Sec. 6.1, Table 10) is ``se_ratio = 1/16``.

    Args:
        channels (int): channels of the input (and of the gate).
        se_ratio (float): bottleneck width as a fraction of ``channels`` (1/r). Default: 0.0625.
        act_layer (callable, optional): activation between the FCs (delta in Eq. 3).
            Default: ``nn.ReLU``.
        gate_layer (callable, optional): gate activation (sigma in Eq. 3). Default: ``nn.Sigmoid``.
    """

    def __init__(self, channels: int, se_ratio: float = 0.0625, act_layer: Optional[Callable] = None,
                 gate_layer: Optional[Callable] = None):
        super().__init__()
        if not isinstance(se_ratio, (int, float)) or isinstance(se_ratio, bool) or se_ratio <= 0:
            raise ValueError(f"SqueezeExcite: se_ratio must be a number > 0, got {se_ratio!r}")
        reduced = int(channels * se_ratio)
        if reduced < 1:
            raise ValueError(f"SqueezeExcite: se_ratio={se_ratio} leaves int({channels} * {se_ratio}) = 0 channels "
                             f"in the bottleneck of a {channels}-channel block; use se_ratio >= {1 / channels:.4g}")
        self.channels, self.reduced = channels, reduced
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc1 = nn.Conv2D(channels, reduced, 1)
        self.act = (act_layer or nn.ReLU)()
        self.fc2 = nn.Conv2D(reduced, channels, 1)
        self.gate = (gate_layer or nn.Sigmoid)()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
