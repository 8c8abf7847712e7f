"""Conv2D -> norm -> activation, the block every model here is made of."""
from typing import Callable, Optional, Union

import paddle.nn as nn

from .helpers import resolve_groups

__all__ = ["ConvNormAct"]


class ConvNormAct(nn.Sequential):
    """``Conv2D`` followed by an optional norm layer and an optional activation.

    With ``kernel_size=1`` and ``groups > 1`` this is the pointwise group convolution
    of ShuffleNet (arXiv 1707.01083, Sec. 3.1) as ONE grouped ``Conv2D``: the
    ``groups`` slices of the channels are convolved by one kernel call instead of a
    Python loop over groups. With ``groups == in_channels`` it is a depthwise
    convolution (MobileNet, arXiv 1704.04861, Sec. 3.1).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): square kernel size. Default: 3.
        stride (int): stride. Default: 1.
        padding (int, optional): padding; ``None`` keeps the size at stride 1
            (``dilation * (kernel_size - 1) // 2``). Default: None.
        groups (int or "auto"): channel groups; ``"auto"`` picks floor(sqrt(C_in))
            moved to a divisor of both channel counts (see ``resolve_groups``). Default: 1.
        norm_layer (callable, optional): norm layer factory taking the channel count;
            ``None`` removes it and gives the conv a bias. Default: ``nn.BatchNorm2D``.
        act_layer (callable, optional): activation factory; ``None`` removes it.
            Default: ``nn.ReLU``.
        bias (bool, optional): conv bias; ``None`` means "only without a norm layer".
            Default: None.
        dilation (int): dilation (atrous rate) of the conv. Default: 1.
        conv_layer (callable): the convolution class, called like ``nn.Conv2D``
            (e.g. ``ppzoo.layers.DynamicConv2D``). Default: ``nn.Conv2D``.

    Unlike the blocks built from it, ``norm_layer=None`` / ``act_layer=None`` here mean
    "none" (as in torchvision's ``Conv2dNormActivation``): this is where a block decides.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: Optional[int] = None,
        groups: Union[int, str] = 1,
        norm_layer: Optional[Callable[..., nn.Layer]] = nn.BatchNorm2D,
        act_layer: Optional[Callable[..., nn.Layer]] = nn.ReLU,
        bias: Optional[bool] = None,
        dilation: int = 1,
        conv_layer: Callable[..., nn.Layer] = nn.Conv2D,
    ):
        groups = resolve_groups(groups, in_channels, out_channels)
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        if bias is None:
            bias = norm_layer is None
        layers = [conv_layer(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups,
                             bias_attr=None if bias else False)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(act_layer())
        super().__init__(*layers)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
