"""Fire module (SqueezeNet, Iandola et al., arXiv 1602.07360, Sec. 3.2, Fig. 1)."""
from typing import Callable, Optional

import paddle
import paddle.nn as nn

from .conv_norm_act import ConvNormAct

__all__ = ["Fire"]


class Fire(nn.Layer):
    """Squeeze 1x1 conv (s1x1 channels) -> ReLU -> expand with e1x1 1x1 and e3x3 3x3
    convs in parallel -> ReLU -> concatenate (e1x1 + e3x3 output channels).

    Strategy 1 of Sec. 3.1 (use 1x1 filters) is the e1x1 half; strategy 2 (fewer inputs
    to the 3x3 filters) is the squeeze layer, with s1x1 < e1x1 + e3x3. The 3x3 expand
    is zero-padded by 1 so both halves have the same size.

    With ``se_layer`` a squeeze-and-excitation block gates the concatenated output (the
    position SENet uses for modules without a shortcut, arXiv 1709.01507 Fig. 2).

    Args:
        in_channels (int): input channels.
        squeeze_channels (int): s1x1.
        expand1x1_channels (int): e1x1.
        expand3x3_channels (int): e3x3.
        norm_layer (callable, optional): norm after each conv; ``None`` for none, as in
            the paper (SqueezeNet has no batch norm). Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(e1x1 + e3x3)`` on the output. Default: None.
    """

    def __init__(self, in_channels: int, squeeze_channels: int, expand1x1_channels: int, expand3x3_channels: int,
                 norm_layer: Optional[Callable] = None, act_layer: Optional[Callable] = None,
                 se_layer: Optional[Callable] = None):
        super().__init__()
        act_layer = act_layer or nn.ReLU
        common = dict(norm_layer=norm_layer, act_layer=act_layer)
        self.squeeze = ConvNormAct(in_channels, squeeze_channels, 1, **common)
        self.expand1x1 = ConvNormAct(squeeze_channels, expand1x1_channels, 1, **common)
        self.expand3x3 = ConvNormAct(squeeze_channels, expand3x3_channels, 3, **common)
        self.se = se_layer(expand1x1_channels + expand3x3_channels) if se_layer is not None else nn.Identity()

    def forward(self, x):
        x = self.squeeze(x)
        return self.se(paddle.concat([self.expand1x1(x), self.expand3x3(x)], axis=1))
