"""Local response normalisation (AlexNet, Krizhevsky et al., NeurIPS 2012, Sec. 3.3)."""
import paddle
import paddle.nn as nn

from .onnx_compat import tracing_for_onnx

__all__ = ["LocalResponseNorm"]


class LocalResponseNorm(nn.LocalResponseNorm):
    """b_c = a_c / (k + alpha * sum_{c' within size/2 of c} a_c'^2) ^ beta, across channels.

    Arguments follow the paper: ``alpha`` multiplies the plain sum of squares (Paddle's
    ``nn.LocalResponseNorm`` divides its ``alpha`` by ``size``; this class converts).
    Defaults are AlexNet's k=2, n=5, alpha=1e-4, beta=0.75. While tracing for ONNX
    (:func:`ppzoo.layers.onnx_compat.onnx_compatible`) the window sum is written as shifted
    slices of a zero-extended tensor instead of Paddle's pad3d + avg_pool3d, which
    paddle2onnx converts wrongly.

    Args:
        size (int): channels in the window. Default: 5.
        alpha (float): scale of the sum of squares. Default: 1e-4.
        beta (float): exponent. Default: 0.75.
        k (float): additive constant. Default: 2.0.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__(size, alpha=alpha * size, beta=beta, k=k)

    def forward(self, x):
        if not tracing_for_onnx():
            return super().forward(x)
        squares = x * x
        before, after = self.size // 2, (self.size - 1) // 2
        zeros = paddle.zeros_like(squares[:, :1])
        extended = paddle.concat([zeros] * before + [squares] + [zeros] * after, axis=1)
        channels = x.shape[1]
        window = extended[:, :channels]
        for i in range(1, self.size):
            window = window + extended[:, i:i + channels]
        return x / paddle.pow(window * (self.alpha / self.size) + self.k, self.beta)
