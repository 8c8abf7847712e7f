"""Local response normalisation (AlexNet, Krizhevsky et al., NeurIPS 2012, Sec. 3.3)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .onnx_compat import tracing_for_onnx

__all__ = ["LocalResponseNorm"]


class LocalResponseNorm(nn.LocalResponseNorm):
    """b_c = a_c / (k + alpha * sum_{c' within size/2 of c} a_c'^2) ^ beta, across channels.

    Arguments follow the paper: ``alpha`` multiplies the plain sum of squares (Paddle's
    ``nn.LocalResponseNorm`` divides its ``alpha`` by ``size``; this class converts).
    Defaults are AlexNet's k=2, n=5, alpha=1e-4, beta=0.75.

    The forward pass computes the same function as Paddle's ``F.local_response_norm`` in
    a form that stays in oneDNN kernels in the exported predictor: the window sum
    ``k + alpha * sum a^2`` is one 1x1 convolution of the squares with a banded C x C
    matrix (alpha inside the band) and bias k, and for beta = 0.75 the power is
    ``s * sqrt(s)`` with ``s = sqrt(d)``. Paddle's form (pad3d, an avg_pool3d over a 5-D
    view, pow, divide) runs outside oneDNN, with layout conversions around it, and took
    ~4x longer at AlexNet's shapes (``docs/analysis.md``, "Slow paths"). While tracing for
    ONNX (:func:`ppzoo.layers.onnx_compat.onnx_compatible`) the window sum is written as
    shifted slices of a zero-extended tensor instead, which paddle2onnx converts correctly.

    Args:
        size (int): channels in the window. Default: 5.
        alpha (float): scale of the sum of squares. Default: 1e-4.
        beta (float): exponent. Default: 0.75.
        k (float): additive constant. Default: 2.0.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__(size, alpha=alpha * size, beta=beta, k=k)

    def forward(self, x):
        if tracing_for_onnx():
            return self._forward_slices(x)
        if x.ndim != 4 or self.data_format != "NCHW":
            return super().forward(x)
        channels = x.shape[1]
        # band[o, i] = alpha where o - size//2 <= i <= o + (size-1)//2: the window of Paddle's padding
        offset = paddle.arange(channels).unsqueeze(0) - paddle.arange(channels).unsqueeze(1)  # i - o
        inside = paddle.logical_and(offset >= -(self.size // 2), offset <= (self.size - 1) // 2)
        band = paddle.cast(inside, x.dtype) * (self.alpha / self.size)
        bias = paddle.full([channels], self.k, dtype=x.dtype)
        d = F.conv2d(x * x, band.reshape([channels, channels, 1, 1]), bias)
        if self.beta == 0.75:
            s = paddle.sqrt(d)
            return x / (s * paddle.sqrt(s))
        return x / paddle.pow(d, self.beta)

    def _forward_slices(self, x):
        squares = x * x
        before, after = self.size // 2, (self.size - 1) // 2
        zeros = paddle.zeros_like(squares[:, :1])
        extended = paddle.concat([zeros] * before + [squares] + [zeros] * after, axis=1)
        channels = x.shape[1]
        window = extended[:, :channels]
        for i in range(1, self.size):
            window = window + extended[:, i:i + channels]
        return x / paddle.pow(window * (self.alpha / self.size) + self.k, self.beta)
