"""MobileNetV2

Paper: MobileNetV2: Inverted Residuals and Linear Bottlenecks
- https://arxiv.org/abs/1801.04381 (Sandler et al., 2018)

Implements Table 2 (the body) with the reference (TF-slim) rules: every width is rounded
to a multiple of 8 and never below 90 % of its unrounded value, the first bottleneck
(t=1) has no expansion conv, the last 1x1 conv keeps 1280 channels for width <= 1.0.

``layout="paddleclas"`` builds PaddleClas's variant instead (widths ``int(c * width)``
without rounding, an expansion conv in every block), which its ImageNet weights need.

``output_stride=16`` or ``8`` replaces the strides from the stage where the map would
get smaller than 1/output_stride of the input by dilation (atrous convolution), as the
MobileNetV2 paper's DeepLabv3 feature extractor does (Sec. 6.3): same weights, a 2x or
4x larger final map. ``dy_mobilenet_v2_*`` are the DY-MobileNetV2 of Chen et al.
(arXiv 1912.03458, Sec. 5.1, Table 2): every convolution except the stem is a
:class:`~ppzoo.layers.DynamicConv2D` with K = 4 kernels in all 17 inverted residual
blocks (the 1x1 expansions, the depthwise 3x3s and the linear projections). The stem,
the last 1x1 conv (to 1280) and the FC stay static: the paper's counts (11.1 / 7.0 / 4.0
/ 2.8 M params) are met with a static last conv and exceeded by 1.2 / 0.9 / 0.6 / 0.4 M
(its extra three kernels) with a dynamic one.
``se_mobilenet_v2_x1_0`` gates each block's expanded channels after the depthwise conv
(r = 16).
"""
from functools import partial
from typing import Callable, Optional

import paddle.nn as nn

from ..layers import ConvNormAct, DynamicConv2D, InvertedResidual, SqueezeExcite, init_weights, make_divisible
from ..registry import register_model
from ._base import ClassifierModel
from ._paddleclas import conv_bn_keys, map_in_order

__all__ = ["MobileNetV2"]

# t, c, n, s  (MobileNetV2, Table 2: expansion, output channels, repeats, first stride)
SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
LAYOUTS = ("reference", "paddleclas")
OUTPUT_STRIDES = (8, 16, 32)


class MobileNetV2(ClassifierModel):
    """3x3/s2 conv, 17 inverted residual blocks, 1x1 conv to 1280, pool, FC.

    Args:
        width (float): width multiplier (Sec. 4 and 6.1; Table 4 lists the results). Default: 1.0.
        num_classes (int): classifier outputs. Default: 1000.
        in_channels (int): image channels. Default: 3.
        drop_rate (float): dropout before the classifier. Default: 0.
        small_input (bool): for 32x32 images (CIFAR): stride 1 in the stem and in the first
            stride-2 stage (24 channels), so a 32x32 input ends on a 4x4 map. Default: False.
        layout (str): ``"reference"`` (paper / TF-slim) or ``"paddleclas"``. Default: "reference".
        output_stride (int): 32 (no dilation), 16 or 8: the input-to-final-map ratio; the
            strides beyond it become dilation (Sec. 6.3). Default: 32.
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU6``. Default: None.
        se_layer (callable, optional): ``se_layer(hidden)`` after each block's depthwise conv. Default: None.
        conv_layer (callable, optional): convolution class of the inverted residual blocks
            (``DynamicConv2D`` for DY-MobileNetV2); ``None`` is ``nn.Conv2D``. Default: None.
    """

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.0, small_input: bool = False, layout: str = "reference",
                 output_stride: int = 32, norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None,
                 conv_layer: Optional[Callable] = None):
        super().__init__(num_classes, in_channels, drop_rate, small_input)
        if not isinstance(width, (int, float)) or width <= 0:
            raise ValueError(f"MobileNetV2: width must be > 0, got {width}")
        if layout not in LAYOUTS:
            raise ValueError(f"MobileNetV2: layout must be one of {LAYOUTS}, got {layout!r}")
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"MobileNetV2: output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
        norm_layer, act_layer, conv_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU6, conv_layer or nn.Conv2D
        self.output_stride = output_stride
        reference = layout == "reference"
        scale = (lambda ch: make_divisible(ch * width, 8)) if reference else (lambda ch: int(ch * width))
        last = max(1280, scale(1280)) if reference else (int(1280 * width) if width > 1.0 else 1280)

        c = scale(32)
        self.stem = ConvNormAct(in_channels, c, 3, stride=1 if small_input else 2, norm_layer=norm_layer,
                                act_layer=act_layer)
        blocks, first_stride2 = [], small_input
        current_stride, rate = 1 if small_input else 2, 1
        for t, out_c, n, s in SETTINGS:
            if s == 2 and first_stride2:
                s, first_stride2 = 1, False
            block_rate = rate
            if s == 2 and current_stride == output_stride:  # atrous from here on (DeepLab's rule)
                s, rate = 1, rate * 2
            elif s == 2:
                current_stride *= 2
            for i in range(n):
                blocks.append(InvertedResidual(c, scale(out_c), s if i == 0 else 1, t, always_expand=not reference,
                                               norm_layer=norm_layer, act_layer=act_layer, se_layer=se_layer,
                                               dilation=block_rate if i == 0 else rate, conv_layer=conv_layer))
                c = scale(out_c)
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = ConvNormAct(c, last, 1, norm_layer=norm_layer, act_layer=act_layer)
        self._init_head(last)
        init_weights(self)

    def forward_features(self, x):
        return self.head_conv(self.blocks(self.stem(x)))


def paddleclas_keys(model: MobileNetV2):
    """PaddleClas ``MobileNetV2*`` names (ppcls/arch/backbone/model_zoo/mobilenet_v2.py), our order."""
    keys = list(conv_bn_keys("conv1", "_conv", "_batch_norm"))
    for stage, (_, _, n, _) in enumerate(SETTINGS, start=2):
        for j in range(n):
            block = f"conv{stage}._first_block" if j == 0 else f"conv{stage}.conv{stage}_{j + 1}"
            for part in ("_expand_conv", "_bottleneck_conv", "_linear_conv"):
                keys += conv_bn_keys(f"{block}.{part}", "_conv", "_batch_norm")
    return keys + list(conv_bn_keys("conv9", "_conv", "_batch_norm")) + ["out.weight", "out.bias"]


def checkpoint_filter_fn(state, model: MobileNetV2, source: str = "state dict"):
    """PaddleClas ``MobileNetV2*`` -> ours; needs ``layout="paddleclas"`` (see module doc)."""
    return map_in_order(state, model, paddleclas_keys(model), source, "MobileNetV2", classifier="out.weight")


# name: width, published params (M), MAdds (M), top-1 (%), PaddleClas names  (Table 4 and the TF-slim
# checkpoint table; TF-slim counts no BN scale, hence params ~1 % below ours)
_VARIANTS = {
    "mobilenet_v2_x1_4": (1.4, 6.06, 582, 75.0, ()),
    "mobilenet_v2_x1_0": (1.0, 3.47, 300, 72.0, ("MobileNetV2",)),
    "mobilenet_v2_x0_75": (0.75, 2.61, 209, 69.8, ("MobileNetV2_x0_75",)),
    "mobilenet_v2_x0_5": (0.5, 1.95, 97, 65.4, ("MobileNetV2_x0_5",)),
    "mobilenet_v2_x0_35": (0.35, 1.66, 59, 60.3, ()),
}

# PaddleClas's layout (always an expansion conv, unrounded widths): ``<name>.paddleclas``,
# which PaddleClas's arch names build. name: params (M), MAdds (M) counted by
# ppzoo.analysis at 224x224, PaddleClas's published top-1 (%) where we have it
_PADDLECLAS = {
    "mobilenet_v2_x1_0": (3.51, 313.6, 72.15),
    "mobilenet_v2_x0_75": (2.63, 186.7, None),
    "mobilenet_v2_x0_5": (1.97, 92.3, None),
}

for _name, (_width, _params, _madds, _top1, _pc) in _VARIANTS.items():
    register_model(partial(MobileNetV2, width=_width), name=_name, family="mobilenet_v2", paper="1801.04381",
                   params=_params, madds=_madds, top1=_top1)
    if _pc:
        _pc_params, _pc_madds, _pc_top1 = _PADDLECLAS[_name]
        register_model(partial(MobileNetV2, width=_width, layout="paddleclas"), name=f"{_name}.paddleclas",
                       family="mobilenet_v2", paper="1801.04381", params=_pc_params, madds=_pc_madds, top1=_pc_top1,
                       paddleclas_names=_pc, notes="PaddleClas's layout; params and MAdds counted, not published")


@register_model(name="se_mobilenet_v2_x1_0", family="mobilenet_v2", paper="1709.01507",
                notes="SE (r = 16) on each block's expanded channels after the depthwise conv; nothing published")
def se_mobilenet_v2_x1_0(se_ratio: float = 0.0625, **kwargs):
    """MobileNetV2 1.0 with an SE block in every inverted residual (after the depthwise conv,
    MobileNetV3's position). No published figures.

    Args:
        se_ratio (float): SE bottleneck width as a fraction of the expanded channels. Default: 1/16.
        **kwargs: passed to :class:`MobileNetV2`.
    """
    return MobileNetV2(width=kwargs.pop("width", 1.0), se_layer=partial(SqueezeExcite, se_ratio=se_ratio), **kwargs)


def _dy_mobilenet_v2(width: float, num_kernels: int = 4, **kwargs):
    """DY-MobileNetV2 (arXiv 1912.03458, Sec. 5.1): K dynamic kernels in every block's convs.

    Args:
        width (float): width multiplier.
        num_kernels (int): K. Default: 4.
        **kwargs: passed to :class:`MobileNetV2`.
    """
    return MobileNetV2(width=width, conv_layer=partial(DynamicConv2D, num_kernels=num_kernels), **kwargs)


# name: width, published params (M), MAdds (M), top-1 (%)  (arXiv 1912.03458, Table 2, K = 4)
_DY_VARIANTS = {
    "dy_mobilenet_v2_x1_0": (1.0, 11.1, 313, 74.4),
    "dy_mobilenet_v2_x0_75": (0.75, 7.0, 217.5, 72.8),
    "dy_mobilenet_v2_x0_5": (0.5, 4.0, 101.4, 69.4),
    "dy_mobilenet_v2_x0_35": (0.35, 2.8, 62, 64.9),
}

for _name, (_width, _params, _madds, _top1) in _DY_VARIANTS.items():
    register_model(partial(_dy_mobilenet_v2, width=_width), name=_name, family="mobilenet_v2", paper="1912.03458",
                   params=_params, madds=_madds, top1=_top1,
                   notes="DynamicConv2D (K = 4) in every inverted residual block; train with TemperatureAnnealing")
