"""ShuffleNet unit (ShuffleNetV1, arXiv 1707.01083, Sec. 3.2, Fig. 2b/2c)."""
from typing import Callable, Optional

import paddle
import paddle.nn as nn

from .channel_shuffle import ChannelShuffle
from .conv_norm_act import ConvNormAct

__all__ = ["ShuffleUnit"]


class ShuffleUnit(nn.Layer):
    """Bottleneck unit built from pointwise group convolutions and a channel shuffle.

    1x1 group conv -> BN-ReLU -> channel shuffle -> 3x3 depthwise conv (stride s) -> BN
    -> 1x1 group conv -> BN, then:

    * stride 1 (Fig. 2b): add the input, ReLU;
    * stride 2 (Fig. 2c): concatenate a 3x3/s2 average-pooled shortcut, ReLU. The branch
      then produces ``out_channels - in_channels`` channels so the concatenation has
      ``out_channels``.

    Following the paper, there is no ReLU after the depthwise conv, and the bottleneck
    width is a quarter of the unit's output channels.

    ``se_layer`` gates the branch after its last BN, before the add / concatenation: the
    residual-branch position of SENet (arXiv 1709.01507, Fig. 3), used for the SE
    ShuffleNet of the ShuffleNetV1 paper (Table 5; 2x g=3: 524 -> 527 M MAdds).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels of the unit.
        stride (int): 1 or 2.
        groups (int): groups g of the pointwise convolutions and of the shuffle.
        mid_channels (int, optional): bottleneck width. Default: ``out_channels // 4``.
        compress_groups (int, optional): groups of the first 1x1 conv; the first unit of
            stage 2 uses 1 because its input has few channels (Sec. 3.3). Default: ``groups``.
        expand_groups (int, optional): groups of the last 1x1 conv. Default: ``groups``.
        shuffle (bool): apply the channel shuffle; ``False`` gives the paper's ablation
            (Table 3). Default: True.
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(channels)`` on the branch. Default: None.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int,
                 mid_channels: Optional[int] = None, compress_groups: Optional[int] = None,
                 expand_groups: Optional[int] = None, shuffle: bool = True, norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleUnit: stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"ShuffleUnit: a stride-1 unit needs in_channels == out_channels, "
                             f"got {in_channels} and {out_channels}")
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        if branch_out <= 0:
            raise ValueError(f"ShuffleUnit: out_channels={out_channels} must exceed in_channels={in_channels} "
                             f"in a stride-2 unit")
        mid_channels = mid_channels or out_channels // 4
        norm_layer, act_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU
        self.stride = stride
        self.compress = ConvNormAct(in_channels, mid_channels, 1, groups=compress_groups or groups,
                                    norm_layer=norm_layer, act_layer=act_layer)  # gconv
        self.shuffle = ChannelShuffle(groups) if shuffle and groups > 1 else nn.Identity()
        self.depthwise = ConvNormAct(mid_channels, mid_channels, 3, stride, groups=mid_channels, norm_layer=norm_layer,
                                     act_layer=None)
        self.expand = ConvNormAct(mid_channels, branch_out, 1, groups=expand_groups or groups, norm_layer=norm_layer,
                                  act_layer=None)
        self.se = se_layer(branch_out) if se_layer is not None else nn.Identity()
        self.shortcut = nn.AvgPool2D(3, stride=2, padding=1, exclusive=False) if stride == 2 else None
        self.act = act_layer()

    def zero_init_last(self) -> None:
        """Zero the scale of the branch's last norm layer, so that the unit starts as its
        shortcut (the identity, or the pooled input beside zeros): the "zero gamma" of Goyal
        et al. (arXiv 1706.02677, Sec. 5.1), timm's ``zero_init_last``."""
        norm = self.expand[1] if len(self.expand) > 1 else None
        if getattr(norm, "weight", None) is not None:
            norm.weight.set_value(paddle.zeros_like(norm.weight))

    def forward(self, x):
        out = self.se(self.expand(self.depthwise(self.shuffle(self.compress(x)))))
        if self.shortcut is None:
            return self.act(x + out)
        return self.act(paddle.concat([self.shortcut(x), out], axis=1))
