"""ShuffleNetV1

Paper: ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices
- https://arxiv.org/abs/1707.01083 (Zhang et al., 2017)

Implements Table 1 (stage widths per group count g), the unit of Fig. 2(b)/(c) and the
width scaling "ShuffleNet s x" of Sec. 4.1.1. Choices the paper leaves open:

* Conv1 has 24 channels at 1x and 1.5x, 12 at 0.5x and 0.25x, 48 at 2x.
* Scaled stage widths are rounded to the nearest multiple of 4g (at least 90 % of the
  unrounded width), so that the bottleneck (a quarter of the width) splits into g groups.
  Every width of Table 1 and of the g=3 / g=8 models of Table 2 is already such a multiple.
* The last 1x1 conv of a stride-2 unit produces ``width - input`` channels. When g does
  not divide that (only in stage 2 of g=8 at 0.25x and 0.5x, whose conv1 has 12
  channels), it uses the smallest group count >= g that divides both of its channel
  counts (12), so the unit never costs more than the g-group unit would.

``se_shufflenet_v1_g3_x2_0`` is the SE ShuffleNet of Table 5 (arXiv 1707.01083v2): an SE
block (r = 16) on every unit's branch before the add / concatenation, 524 -> 527 M MAdds,
26.3 -> 24.7 % top-1 error.
"""
import math
from functools import partial
from typing import Callable, Optional

import paddle.nn as nn

from ..layers import ConvNormAct, ShuffleUnit, SqueezeExcite, divisors, init_weights, make_divisible
from ..registry import register_model
from ._base import ClassifierModel

__all__ = ["ShuffleNetV1"]

# g: output channels of stages 2, 3, 4 at 1x  (ShuffleNetV1, Table 1)
STAGE_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
STAGE_REPEATS = (4, 8, 4)  # one stride-2 unit + 3 / 7 / 3 stride-1 units (Table 1)
CONV1_CHANNELS = {0.25: 12, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}


def _groups_at_least(groups: int, *channels: int) -> int:
    """The smallest divisor of every channel count that is >= ``groups``."""
    common = math.gcd(*channels)
    return next((d for d in divisors(common) if d >= groups), common)


class ShuffleNetV1(ClassifierModel):
    """Conv1 3x3/s2, max-pool 3x3/s2, three stages of ShuffleNet units, pool, FC.

    Args:
        groups (int): groups g of the pointwise convolutions, one of 1, 2, 3, 4, 8. Default: 3.
        width (float): scale factor s of "ShuffleNet s x". Default: 1.0.
        num_classes (int): classifier outputs. Default: 1000.
        in_channels (int): image channels. Default: 3.
        drop_rate (float): dropout before the classifier. Default: 0.
        shuffle (bool): channel shuffle on; ``False`` is the ablation of Table 3. Default: True.
        stem_channels (int, optional): conv1 width. Default: by ``width`` (see module doc).
        small_input (bool): for 32x32 images (CIFAR): conv1 stride 1 and no max-pool, so the
            network downsamples 8x and a 32x32 input ends on a 4x4 map. Default: False.
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(channels)`` on every unit's branch. Default: None.
        zero_init_last (bool): start every unit's last BN at scale 0, so each unit begins as
            its shortcut (Goyal et al., arXiv 1706.02677, Sec. 5.1). Without it, SGD with
            momentum 0.9 diverged in the first steps on CIFAR-10 at LR 0.03 (0.5x, g=1 and 3, and
            1x: the loss rose from 2.3 to 8-37); with it the same run's loss falls. The SGD
            configs (configs/cifar10/, configs/imagenet/) turn it on. Default: False (the
            initialisation every recorded result before it was trained with).
    """

    def __init__(self, groups: int = 3, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.0, shuffle: bool = True, stem_channels: Optional[int] = None,
                 small_input: bool = False, norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None,
                 zero_init_last: bool = False):
        super().__init__(num_classes, in_channels, drop_rate, small_input)
        if groups not in STAGE_CHANNELS:
            raise ValueError(f"ShuffleNetV1: groups must be one of {sorted(STAGE_CHANNELS)}, got {groups!r}")
        if not isinstance(width, (int, float)) or width <= 0:
            raise ValueError(f"ShuffleNetV1: width must be > 0, got {width}")
        norm_layer, act_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU
        if stem_channels is None:
            stem_channels = CONV1_CHANNELS.get(width, make_divisible(24 * width, 4))

        self.stem = ConvNormAct(in_channels, stem_channels, 3, stride=1 if small_input else 2, norm_layer=norm_layer,
                                act_layer=act_layer)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2D(3, stride=2, padding=1)
        c = stem_channels
        stages = []
        for stage, (base, repeats) in enumerate(zip(STAGE_CHANNELS[groups], STAGE_REPEATS)):
            out_c = make_divisible(base * width, 4 * groups)
            units = []
            for i in range(repeats):
                stride2 = i == 0
                first = stage == 0 and i == 0
                units.append(ShuffleUnit(
                    c, out_c, 2 if stride2 else 1, groups, mid_channels=out_c // 4,
                    compress_groups=1 if first else groups,  # Sec. 3.3: stage 2's input is too thin to group
                    expand_groups=_groups_at_least(groups, out_c // 4, out_c - c) if stride2 else groups,
                    shuffle=shuffle, norm_layer=norm_layer, act_layer=act_layer, se_layer=se_layer))
                c = out_c
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self._init_head(c)
        init_weights(self)
        if zero_init_last:
            for unit in self.stages.sublayers():
                if isinstance(unit, ShuffleUnit):
                    unit.zero_init_last()

    def forward_features(self, x):
        return self.stages(self.maxpool(self.stem(x)))


# (g, s): published params (M), MAdds (M), top-1 (%)  (Table 2 of the paper; 100 - error)
_PUBLISHED = {
    (1, 1.0): (1.53, 143, 66.4),
    (2, 1.0): (1.73, 140, 67.3),
    (3, 1.0): (1.87, 137, 67.4),
    (4, 1.0): (1.97, 133, 67.2),
    (8, 1.0): (2.43, 137, 67.6),
    (3, 0.5): (0.72, 38, 56.8),
    (8, 0.5): (1.01, 38, 57.7),
    (3, 0.25): (0.31, 13, 45.0),
    (3, 1.5): (3.44, 292, 71.5),
    (3, 2.0): (5.45, 524, 73.7),
    (8, 1.5): (4.27, 290, 71.0),
    (8, 2.0): (6.52, 522, 72.9),
}
_WIDTH_TAGS = {0.25: "0_25", 0.5: "0_5", 1.0: "1_0", 1.5: "1_5", 2.0: "2_0"}

for _g in STAGE_CHANNELS:
    for _s, _tag in _WIDTH_TAGS.items():
        _params, _madds, _top1 = _PUBLISHED.get((_g, _s), (None, None, None))
        register_model(partial(ShuffleNetV1, groups=_g, width=_s), name=f"shufflenet_v1_g{_g}_x{_tag}",
                       family="shufflenet_v1", paper="1707.01083", params=_params, madds=_madds, top1=_top1)


@register_model(name="se_shufflenet_v1_g3_x2_0", family="shufflenet_v1", paper="1707.01083", madds=527,
                top1=75.3, notes="Table 5 (arXiv 1707.01083v2): SE (r = 16) on every unit's branch")
def se_shufflenet_v1_g3_x2_0(se_ratio: float = 0.0625, **kwargs):
    """SE ShuffleNet 2x (g = 3) of ShuffleNetV1 Table 5 (24.7 % top-1 error).

    Args:
        se_ratio (float): SE bottleneck width as a fraction of the branch's channels. Default: 1/16.
        **kwargs: passed to :class:`ShuffleNetV1`.
    """
    kwargs = {"groups": 3, "width": 2.0, **kwargs}
    return ShuffleNetV1(se_layer=partial(SqueezeExcite, se_ratio=se_ratio), **kwargs)
