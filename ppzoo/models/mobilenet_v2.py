"""MobileNetV2

Paper: MobileNetV2: Inverted Residuals and Linear Bottlenecks
- https://arxiv.org/abs/1801.04381 (Sandler et al., 2018)

Implements Table 2 (the body) with the reference (TF-slim) rules: every width is rounded
to a multiple of 8 and never below 90 % of its unrounded value, the first bottleneck
(t=1) has no expansion conv, the last 1x1 conv keeps 1280 channels for width <= 1.0.

``layout="paddleclas"`` builds PaddleClas's variant instead (widths ``int(c * width)``
without rounding, an expansion conv in every block), which its ImageNet weights need.
"""
from functools import partial

import paddle.nn as nn

from ..layers import ConvNormAct, InvertedResidual, init_weights, make_divisible
from ..registry import register_model
from ._base import ClassifierModel

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
    """

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.0, small_input: bool = False, layout: str = "reference"):
        super().__init__(num_classes, in_channels, drop_rate, small_input)
        if width <= 0:
            raise ValueError(f"MobileNetV2: width must be > 0, got {width}")
        if layout not in LAYOUTS:
            raise ValueError(f"MobileNetV2: layout must be one of {LAYOUTS}, got {layout!r}")
        reference = layout == "reference"
        scale = (lambda ch: make_divisible(ch * width, 8)) if reference else (lambda ch: int(ch * width))
        last = max(1280, scale(1280)) if reference else (int(1280 * width) if width > 1.0 else 1280)

        c = scale(32)
        self.stem = ConvNormAct(in_channels, c, 3, stride=1 if small_input else 2, act_layer=nn.ReLU6)
        blocks, first_stride2 = [], small_input
        for t, out_c, n, s in SETTINGS:
            if s == 2 and first_stride2:
                s, first_stride2 = 1, False
            for i in range(n):
                blocks.append(InvertedResidual(c, scale(out_c), s if i == 0 else 1, t, always_expand=not reference))
                c = scale(out_c)
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = ConvNormAct(c, last, 1, act_layer=nn.ReLU6)
        self._init_head(last)
        init_weights(self)

    def forward_features(self, x):
        return self.head_conv(self.blocks(self.stem(x)))


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
