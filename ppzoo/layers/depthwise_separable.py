"""Depthwise-separable convolution (MobileNetV1, arXiv 1704.04861, Sec. 3.1, Fig. 3)."""
from typing import Callable, Optional

import paddle.nn as nn

from .conv_norm_act import ConvNormAct

__all__ = ["DepthwiseSeparableConv"]


class DepthwiseSeparableConv(nn.Sequential):
    """3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU (Fig. 3, right).

    Factorising a KxK convolution this way costs 1/N + 1/K^2 of the full convolution
    (Sec. 3.1, the reduction stated after Eq. 5), about 8-9x less for K=3.

    With ``se_layer`` a squeeze-and-excitation block follows the pointwise conv, where
    SE-MobileNet puts it (SENet, arXiv 1709.01507, Table 3: 4.2 M -> 4.7 M params, which
    is what gating the 13 pointwise outputs at r = 16 adds).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels of the pointwise conv.
        stride (int): stride of the depthwise conv. Default: 1.
        kernel_size (int): depthwise kernel size. Default: 3.
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(channels)`` after the pointwise conv;
            ``None`` for none. Default: None.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3,
                 norm_layer: Optional[Callable] = None, act_layer: Optional[Callable] = None,
                 se_layer: Optional[Callable] = None):
        norm_layer, act_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU
        layers = [
            ConvNormAct(in_channels, in_channels, kernel_size, stride, groups=in_channels,
                        norm_layer=norm_layer, act_layer=act_layer),  # dw
            ConvNormAct(in_channels, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer),  # pw
        ]
        if se_layer is not None:
            layers.append(se_layer(out_channels))
        super().__init__(*layers)
