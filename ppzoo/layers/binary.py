"""Binary layers: 1-bit weights (and optionally 1-bit activations) trained with
straight-through estimators.

* Weights (BinaryConnect, Courbariaux et al. 2015; XNOR-Net, Rastegari et al. 2016,
  section 3.1 eq. 4-6): ``W_b = alpha_c * sign(W)`` with ``alpha_c = mean|W_c|`` per output
  channel. ``sign(0) = +1``, so every weight is one bit. Gradient (XNOR-Net section 3.2):
  autograd through ``alpha`` plus the hard-tanh straight-through estimator of ``sign``,
  ``d sign(w) / dw = 1{|w| <= 1}``.
* Activations (``binary_act=True``; XNOR-Net's binary inputs without the K scaling map,
  Bi-Real Net's sign): ``sign(x - b)`` forward, ``1{|x - b| <= 1}`` backward (hard-tanh
  STE), with a learned threshold ``b`` per input channel (ReActNet's RSign, Liu et al.
  2020, eq. 3). Our convolutions take ReLU outputs (>= 0), whose plain sign is +1
  everywhere: a constant output, zero BatchNorm variance and exploding gradients. So ``b``
  starts at each channel's mean over the first training batch (a buffer records that it
  was set, so resuming does not redo it).
* Bi-Real-style shortcut (Liu et al. 2018, "Bi-Real Net", section 3.1): with binary
  activations a real-valued identity is added around the binary convolution when its input
  and output shapes agree, so the real activations of the block survive the sign. Here it
  is added to the convolution's output (before the BatchNorm that follows in our blocks).

These layers subclass ``nn.Conv2D`` / ``nn.Linear`` (same parameters, same state-dict
keys; the MAdds counters see a convolution). Paddle has no 1-bit kernels (no XNOR /
popcount), so they compute in float32: the gain is storage (bit-packing,
``ppzoo.compress.quant.binary.save_packed``), not speed.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["sign_ste", "binarize_weight", "BinaryConv2D", "BinaryLinear"]


def sign_ste(x: paddle.Tensor) -> paddle.Tensor:
    """``+1`` where ``x >= 0`` else ``-1``; gradient ``1{|x| <= 1}`` (hard-tanh STE)."""
    hard = paddle.clip(x, -1.0, 1.0)
    sign = paddle.where(x >= 0, paddle.ones_like(x), -paddle.ones_like(x))
    return hard + (sign - hard).detach()


class _ActSign(nn.Layer):
    """``sign_ste(x - b)`` with a learned per-channel threshold ``b`` (RSign), set to the
    channel means of the first training batch."""

    def __init__(self, channels: int, axis: int):
        super().__init__()
        self.axis = axis
        self.shift = self.create_parameter([channels], default_initializer=nn.initializer.Constant(0.0))
        self.register_buffer("initialized", paddle.zeros([1], dtype="float32"))

    def _view(self, x):
        return [-1 if d == self.axis % x.ndim else 1 for d in range(x.ndim)]

    def forward(self, x):
        if self.training and float(self.initialized) == 0.0:
            with paddle.no_grad():
                reduce = [d for d in range(x.ndim) if d != self.axis % x.ndim]
                self.shift.set_value(x.mean(axis=reduce))
                self.initialized.set_value(paddle.ones([1]))
        return sign_ste(x - self.shift.reshape(self._view(x)))


def binarize_weight(weight: paddle.Tensor, axis: int = 0) -> paddle.Tensor:
    """``mean|W_c| * sign(W)`` per output channel ``c`` along ``axis``."""
    reduce = [d for d in range(weight.ndim) if d != axis]
    alpha = weight.abs().mean(axis=reduce, keepdim=True)
    return alpha * sign_ste(weight)


def _copy_params(source: nn.Layer, target: nn.Layer) -> nn.Layer:
    """``target`` with ``source``'s weight and bias (the float layer a binary one replaces)."""
    target.weight.set_value(source.weight)
    if source.bias is not None:
        target.bias.set_value(source.bias)
    return target


class BinaryConv2D(nn.Conv2D):
    """A ``Conv2D`` with binary weights (see the module docstring).

    Args:
        in_channels, out_channels, kernel_size, stride (default 1), padding (default 0),
        dilation (default 1), groups (default 1), bias_attr (default None): as ``nn.Conv2D``.
        binary_act (bool): binarize the input too. Default: False.
        shortcut (bool): with ``binary_act``, add the real input to the output when the
            shapes agree (Bi-Real). Default: False.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias_attr=None, binary_act: bool = False, shortcut: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias_attr=bias_attr)
        self.binary_act, self.shortcut = binary_act, shortcut
        self.act_sign = _ActSign(in_channels, 1) if binary_act else None

    @classmethod
    def from_conv(cls, conv: nn.Conv2D, binary_act: bool = False, shortcut: bool = False) -> "BinaryConv2D":
        """A binary copy of ``conv`` (weights and bias copied)."""
        if conv._padding_mode != "zeros" or conv._data_format != "NCHW":
            raise ValueError(f"binary conv supports zero padding and NCHW, got {conv._padding_mode}, "
                             f"{conv._data_format}")
        layer = cls(conv._in_channels, conv._out_channels, conv._kernel_size, conv._stride, conv._padding,
                    conv._dilation, conv._groups, bias_attr=False if conv.bias is None else None,
                    binary_act=binary_act, shortcut=shortcut)
        return _copy_params(conv, layer)

    def forward(self, x):
        inp = self.act_sign(x) if self.binary_act else x
        out = F.conv2d(inp, binarize_weight(self.weight, 0), self.bias, self._stride, self._padding,
                       self._dilation, self._groups)
        if self.binary_act and self.shortcut and out.shape == x.shape:
            out = out + x
        return out

    def extra_repr(self):
        return super().extra_repr() + f", binary_act={self.binary_act}, shortcut={self.shortcut}"


class BinaryLinear(nn.Linear):
    """A ``Linear`` with binary weights, one ``alpha`` per output feature (weight
    ``[in, out]``: axis 1).

    Args:
        in_features, out_features, bias_attr (default None): as ``nn.Linear``.
        binary_act (bool): binarize the input too. Default: False.
    """

    def __init__(self, in_features: int, out_features: int, bias_attr=None, binary_act: bool = False):
        super().__init__(in_features, out_features, bias_attr=bias_attr)
        self.binary_act = binary_act
        self.act_sign = _ActSign(in_features, -1) if binary_act else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, binary_act: bool = False) -> "BinaryLinear":
        """A binary copy of ``linear``."""
        layer = cls(linear.weight.shape[0], linear.weight.shape[1],
                    bias_attr=False if linear.bias is None else None, binary_act=binary_act)
        return _copy_params(linear, layer)

    def forward(self, x):
        inp = self.act_sign(x) if self.binary_act else x
        return F.linear(inp, binarize_weight(self.weight, 1), self.bias)
