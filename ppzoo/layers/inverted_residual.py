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

    ``se_layer`` gates the expanded channels after the depthwise conv, where MnasNet and
    MobileNetV3 (arXiv 1807.11626, 1905.02244 Fig. 4) put it: the block's widest
    representation, before the projection throws channels away. ``dilation`` is the
    atrous rate of the depthwise conv (Sec. 6.3, DeepLabv3 with output stride 16/8).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        stride (int): depthwise stride, 1 or 2.
        expand_ratio (float): expansion factor t; hidden width is round(in_channels * t).
        always_expand (bool): build the 1x1 expansion even when t == 1. The reference
            network skips it (its first block has none); PaddleClas builds it. Default: False.
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU6``. Default: None.
        se_layer (callable, optional): ``se_layer(hidden)`` after the depthwise conv. Default: None.
        dilation (int): dilation of the depthwise conv. Default: 1.
        conv_layer (callable, optional): convolution class of all three convs (e.g.
            ``DynamicConv2D``); ``None`` is ``nn.Conv2D``. Default: None.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float,
                 always_expand: bool = False, norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None, dilation: int = 1,
                 conv_layer: Optional[Callable] = None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride}")
        norm_layer, act_layer, conv_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU6, conv_layer or nn.Conv2D
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        common = dict(norm_layer=norm_layer, conv_layer=conv_layer)
        layers = []
        if expand_ratio != 1 or always_expand:
            layers.append(ConvNormAct(in_channels, hidden, 1, act_layer=act_layer, **common))  # pw
        layers.append(ConvNormAct(hidden, hidden, 3, stride, groups=hidden, act_layer=act_layer, dilation=dilation,
                                  **common))  # dw
        if se_layer is not None:
            layers.append(se_layer(hidden))
        layers.append(ConvNormAct(hidden, out_channels, 1, act_layer=None, **common))  # pw-linear
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)
