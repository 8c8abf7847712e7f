"""Residual blocks of ResNet (He et al., arXiv 1512.03385, Sec. 3.3, Fig. 2 and 5)."""
from typing import Callable, Optional

import paddle.nn as nn

from .conv_norm_act import ConvNormAct

__all__ = ["BasicBlock", "Bottleneck"]


class _Residual(nn.Layer):
    """``act(branch(x) + shortcut(x))`` with an optional SE gate on the branch."""

    expansion = 1

    def _finish(self, in_channels: int, out_channels: int, stride: int, norm_layer, act_layer, se_layer,
                force_projection: bool):
        # projection shortcut (option B of Sec. 3.3) only where the shape changes
        if stride != 1 or in_channels != out_channels or force_projection:
            self.shortcut = ConvNormAct(in_channels, out_channels, 1, stride, norm_layer=norm_layer, act_layer=None)
        else:
            self.shortcut = nn.Identity()
        self.se = se_layer(out_channels) if se_layer is not None else nn.Identity()
        self.act = act_layer()

    def forward(self, x):
        return self.act(self.se(self.branch(x)) + self.shortcut(x))


class BasicBlock(_Residual):
    """Two 3x3 conv-BN layers (ReLU between) plus the shortcut, then ReLU (Fig. 2,
    ResNet-18/34). The stride sits on the first 3x3.

    ``se_layer`` gates the branch after its last BN, before the addition (SE-ResNet
    module, SENet arXiv 1709.01507, Fig. 3).

    Args:
        in_channels (int): input channels.
        channels (int): output channels (``expansion = 1``).
        stride (int): stride of the first 3x3. Default: 1.
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(channels)`` on the branch. Default: None.
        force_projection (bool): a 1x1 projection shortcut even when the shape does not
            change (PaddleClas builds one in the first block of every stage). Default: False.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None,
                 force_projection: bool = False):
        super().__init__()
        norm_layer, act_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU
        self.branch = nn.Sequential(
            ConvNormAct(in_channels, channels, 3, stride, norm_layer=norm_layer, act_layer=act_layer),
            ConvNormAct(channels, channels, 3, norm_layer=norm_layer, act_layer=None),
        )
        self._finish(in_channels, channels, stride, norm_layer, act_layer, se_layer, force_projection)


class Bottleneck(_Residual):
    """1x1 reduce -> 3x3 (stride s) -> 1x1 expand to ``4 * channels``, BN after each, ReLU
    after the first two and after the addition (Fig. 5 right, ResNet-50/101/152).

    The stride is on the 3x3 conv, not on the first 1x1 as in the paper's Caffe model:
    the "ResNet v1.5" layout of torchvision and PaddleClas, which all their weights use.
    ``se_layer`` gates the branch after the last BN, before the addition (SENet Fig. 3).

    Args:
        in_channels (int): input channels.
        channels (int): bottleneck width; the block outputs ``4 * channels``.
        stride (int): stride of the 3x3 conv. Default: 1.
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(4 * channels)`` on the branch. Default: None.
        force_projection (bool): see :class:`BasicBlock`. Default: False.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None,
                 force_projection: bool = False):
        super().__init__()
        norm_layer, act_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU
        out_channels = channels * self.expansion
        self.branch = nn.Sequential(
            ConvNormAct(in_channels, channels, 1, norm_layer=norm_layer, act_layer=act_layer),
            ConvNormAct(channels, channels, 3, stride, norm_layer=norm_layer, act_layer=act_layer),
            ConvNormAct(channels, out_channels, 1, norm_layer=norm_layer, act_layer=None),
        )
        self._finish(in_channels, out_channels, stride, norm_layer, act_layer, se_layer, force_projection)
