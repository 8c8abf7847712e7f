"""Inverted residual with linear bottleneck (MobileNetV2, arXiv 1801.04381, Sec. 3.3, Table 1)."""
from typing import Callable, Optional

import paddle.nn as nn

from .conv_norm_act import ConvNormAct

__all__ = ["InvertedResidual"]


class InvertedResidual(nn.Layer):
    """1x1 expansion (ReLU6) -> 3x3 depthwise (ReLU6, stride s) -> 1x1 linear projection.

    The block of Table 1. The shortcut joins the thin bottlenecks (Fig. 3b) and only
    exists when ``stride == 1`` and ``in_channels == out_channels``; the projection has
    no activation because ReLU on a low-dimensional manifold destroys information
    (Sec. 3.2, "linear bottlenecks").

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        stride (int): depthwise stride, 1 or 2.
        expand_ratio (float): expansion factor t; hidden width is round(in_channels * t).
        always_expand (bool): build the 1x1 expansion even when t == 1. The reference
            network skips it (its first block has none); PaddleClas builds it. Default: False.
        norm_layer (callable, optional): norm factory. Default: ``nn.BatchNorm2D``.
        act_layer (callable, optional): activation factory. Default: ``nn.ReLU6``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float,
                 always_expand: bool = False, norm_layer: Optional[Callable] = nn.BatchNorm2D,
                 act_layer: Optional[Callable] = nn.ReLU6):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers = []
        if expand_ratio != 1 or always_expand:
            layers.append(ConvNormAct(in_channels, hidden, 1, norm_layer=norm_layer, act_layer=act_layer))  # pw
        layers += [
            ConvNormAct(hidden, hidden, 3, stride, groups=hidden, norm_layer=norm_layer, act_layer=act_layer),  # dw
            ConvNormAct(hidden, out_channels, 1, norm_layer=norm_layer, act_layer=None),  # pw-linear
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)
