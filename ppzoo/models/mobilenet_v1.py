"""MobileNetV1

Paper: MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications
- https://arxiv.org/abs/1704.04861 (Howard et al., 2017)

Implements Table 1 (the body), Sec. 3.1 (depthwise-separable convolution) and Sec. 3.3
(width multiplier alpha). ``full_conv=True`` is the "Conv MobileNet" of Table 4: every
depthwise-separable pair replaced by one full 3x3 conv-BN-ReLU (29.3 M params, 4866 M
MAdds, 71.7 % top-1 against 4.2 M / 569 M / 70.6 %). ``se_mobilenet_v1_x1_0`` is the
SE-MobileNet of SENet (arXiv 1709.01507, Table 3: 4.7 M params, 572 M MAdds, 25.3 %
top-1 error): an SE block (r = 16) after every block's pointwise conv.

The layer order matches PaddleClas's ``MobileNetV1*`` exactly, so its ImageNet weights
convert by position (:func:`checkpoint_filter_fn`).
"""
from functools import partial
from typing import Callable, Optional

import paddle.nn as nn

from ..layers import ConvNormAct, DepthwiseSeparableConv, SqueezeExcite, init_weights
from ..registry import register_model
from ._base import ClassifierModel
from ._paddleclas import conv_bn_keys, map_in_order

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
        full_conv (bool): Table 4's "Conv MobileNet": each block is one full 3x3
            conv-BN-ReLU with the block's stride and output width. Default: False.
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(channels)`` after every block. Default: None.
    """

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.0, small_input: bool = False, full_conv: bool = False,
                 norm_layer: Optional[Callable] = None, act_layer: Optional[Callable] = None,
                 se_layer: Optional[Callable] = None):
        super().__init__(num_classes, in_channels, drop_rate, small_input)
        if not isinstance(width, (int, float)) or width <= 0:
            raise ValueError(f"MobileNetV1: width must be > 0, got {width}")
        norm_layer, act_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU
        common = dict(norm_layer=norm_layer, act_layer=act_layer)
        c = int(32 * width)
        self.stem = ConvNormAct(in_channels, c, 3, stride=1 if small_input else 2, **common)
        blocks, first_stride2 = [], small_input
        for out_c, stride in BLOCKS:
            if stride == 2 and first_stride2:
                stride, first_stride2 = 1, False
            out_c = int(out_c * width)
            if full_conv:
                block = ConvNormAct(c, out_c, 3, stride, **common)
                blocks.append(nn.Sequential(block, se_layer(out_c)) if se_layer is not None else block)
            else:
                blocks.append(DepthwiseSeparableConv(c, out_c, stride, se_layer=se_layer, **common))
            c = out_c
        self.blocks = nn.Sequential(*blocks)
        self._init_head(c)
        init_weights(self)

    def forward_features(self, x):
        return self.blocks(self.stem(x))


def paddleclas_keys(model: MobileNetV1):
    """PaddleClas ``MobileNetV1*`` names (ppcls/arch/backbone/legendary_models/mobilenet_v1.py), our order."""
    keys = list(conv_bn_keys("conv", "conv", "bn"))
    for i in range(len(BLOCKS)):
        keys += conv_bn_keys(f"blocks.{i}.depthwise_conv", "conv", "bn")
        keys += conv_bn_keys(f"blocks.{i}.pointwise_conv", "conv", "bn")
    return keys + ["fc.weight", "fc.bias"]


def checkpoint_filter_fn(state, model: MobileNetV1, source: str = "state dict"):
    """PaddleClas ``MobileNetV1*`` -> ours (same tensors, same order)."""
    return map_in_order(state, model, paddleclas_keys(model), source, "MobileNetV1", classifier="fc.weight")


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

register_model(partial(MobileNetV1, width=1.0, full_conv=True), name="mobilenet_v1_full_conv_x1_0",
               family="mobilenet_v1", paper="1704.04861", params=29.3, madds=4866, top1=71.7,
               notes="Table 4 'Conv MobileNet': full 3x3 convolutions instead of depthwise-separable pairs")


@register_model(name="se_mobilenet_v1_x1_0", family="mobilenet_v1", paper="1709.01507", params=4.7, madds=572,
                top1=74.7, notes="SENet Table 3: SE (r = 16) after every block's pointwise conv")
def se_mobilenet_v1_x1_0(se_ratio: float = 0.0625, **kwargs):
    """SE-MobileNet 1.0 (SENet, arXiv 1709.01507, Table 3: 25.3 % top-1 error).

    Args:
        se_ratio (float): SE bottleneck width as a fraction of the block's channels. Default: 1/16.
        **kwargs: passed to :class:`MobileNetV1`.
    """
    return MobileNetV1(width=kwargs.pop("width", 1.0), se_layer=partial(SqueezeExcite, se_ratio=se_ratio), **kwargs)
