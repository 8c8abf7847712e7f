"""MobileNetV1

Paper: MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications
- https://arxiv.org/abs/1704.04861 (Howard et al., 2017)

Implements Table 1 (the body), Sec. 3.1 (depthwise-separable convolution) and Sec. 3.3
(width multiplier alpha). The layer order matches PaddleClas's ``MobileNetV1*`` exactly, so
its ImageNet weights convert by position (``ppzoo.convert``).
"""
from functools import partial

import paddle.nn as nn

from ..layers import ConvNormAct, DepthwiseSeparableConv, init_weights
from ..registry import register_model
from ._base import ClassifierModel

__all__ = ["MobileNetV1"]

# c, s  (MobileNetV1, Table 1: output channels of each depthwise-separable block, dw stride)
BLOCKS = [
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
]


class MobileNetV1(ClassifierModel):
    """3x3/s2 conv, 13 depthwise-separable blocks, global average pool, one FC.

    Args:
        width (float): width multiplier alpha (Sec. 3.3); channels are ``int(c * alpha)``.
            Default: 1.0.
        num_classes (int): classifier outputs. Default: 1000.
        in_channels (int): image channels. Default: 3.
        drop_rate (float): dropout before the classifier. Default: 0.
        small_input (bool): for 32x32 images (CIFAR): stride 1 in the stem and in the first
            stride-2 block, so the network downsamples 8x instead of 32x and a 32x32 input
            ends on a 4x4 map instead of 1x1. Default: False.
    """

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.0, small_input: bool = False):
        super().__init__(num_classes, in_channels, drop_rate, small_input)
        if width <= 0:
            raise ValueError(f"MobileNetV1: width must be > 0, got {width}")
        c = int(32 * width)
        self.stem = ConvNormAct(in_channels, c, 3, stride=1 if small_input else 2)
        blocks, first_stride2 = [], small_input
        for out_c, stride in BLOCKS:
            if stride == 2 and first_stride2:
                stride, first_stride2 = 1, False
            blocks.append(DepthwiseSeparableConv(c, int(out_c * width), stride))
            c = int(out_c * width)
        self.blocks = nn.Sequential(*blocks)
        self._init_head(c)
        init_weights(self)

    def forward_features(self, x):
        return self.blocks(self.stem(x))


# name: width, published params (M), MAdds (M), top-1 (%), PaddleClas name  (Table 6 of the paper)
_VARIANTS = {
    "mobilenet_v1_x1_0": (1.0, 4.24, 569, 70.6, "MobileNetV1"),
    "mobilenet_v1_x0_75": (0.75, 2.59, 325, 68.4, "MobileNetV1_x0_75"),
    "mobilenet_v1_x0_5": (0.5, 1.34, 149, 63.7, "MobileNetV1_x0_5"),
    "mobilenet_v1_x0_25": (0.25, 0.47, 41, 50.6, "MobileNetV1_x0_25"),
}

for _name, (_width, _params, _madds, _top1, _pc) in _VARIANTS.items():
    register_model(partial(MobileNetV1, width=_width), name=_name, family="mobilenet_v1", paper="1704.04861",
                   params=_params, madds=_madds, top1=_top1, paddleclas_names=(_pc,))
