"""Channel shuffle (ShuffleNet, arXiv 1707.01083, Sec. 3.1 and Fig. 1)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .helpers import divisors
from .onnx_compat import tracing_for_onnx

__all__ = ["channel_shuffle", "ChannelShuffle"]


def channel_shuffle(x: paddle.Tensor, groups: int) -> paddle.Tensor:
    """Interleave the channels of ``groups`` groups so that the next group convolution
    sees channels from every group of the previous one.

    The result equals reshape (N, g, C/g, H, W) -> transpose(0, 2, 1, 3, 4) -> reshape
    (N, C, H, W). In dygraph it runs as Paddle's single ``channel_shuffle`` kernel, 5-6x
    faster than the three ops (``benchmarks/ops.py``). When traced for export it is
    written as the three ops instead: the exported predictor runs them as oneDNN kernels
    on oneDNN's blocked layout, while the fused op has no oneDNN kernel and costs a layout
    conversion before and after it (ShuffleNetV1 1x g=3 ran 15 % faster in the predictor,
    ``docs/analysis.md``, "Slow paths"); paddle2onnx also has no converter for the fused op.

    Args:
        x (Tensor): NCHW input.
        groups (int): number of groups; must divide the channel count.
    """
    channels = x.shape[1]
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"channel_shuffle: groups must be a positive int, got {groups!r}")
    if channels > 0 and channels % groups:
        raise ValueError(
            f"channel_shuffle: {channels} channels cannot be split into groups={groups}; "
            f"groups must divide the channel count (valid: {divisors(channels)})")
    if groups == 1:
        return x
    if tracing_for_onnx() or not paddle.in_dynamic_mode():  # exported: oneDNN kernels, ONNX-convertible
        n, c, h, w = x.shape
        x = paddle.reshape(x, [-1, groups, c // groups, h, w])
        return paddle.reshape(paddle.transpose(x, [0, 2, 1, 3, 4]), [-1, c, h, w])
    return F.channel_shuffle(x, groups)


class ChannelShuffle(nn.Layer):
    """Layer form of :func:`channel_shuffle`, so that hooks and analysis see it."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return channel_shuffle(x, self.groups)

    def extra_repr(self):
        return f"groups={self.groups}"
