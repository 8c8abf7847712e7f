"""Dynamic convolution (Chen et al., "Dynamic Convolution: Attention over Convolution
Kernels", CVPR 2020, arXiv 1912.03458).

A dynamic layer holds K kernels and, for every image, convolves it with their
attention-weighted sum ``W(x) = sum_k pi_k(x) W_k`` (bias likewise; Sec. 3, Eq. 1-2). The
attention is a squeeze-and-excitation branch: global average pool -> FC C/4 -> ReLU ->
FC K -> softmax(z / tau) (Sec. 3.2). Summing the attention to one keeps the aggregated
kernel in the convex hull of the K kernels, and a large temperature tau keeps it near
uniform early in training so all kernels learn; the paper anneals tau linearly from 30 to
1 over the first 10 epochs (Sec. 3.3 and 5.1). At tau = 1 the layer is what is deployed.

Temperature: a layer is built with ``temperature=1`` (the trained state), so a model
loaded for inference is right without extra calls. Training anneals it from the outside:
``set_temperature(model, t)`` sets every dynamic layer, ``temperature_at(epoch)`` is the
paper's schedule, and :class:`TemperatureAnnealing` packages both as a training hook
(``prepare`` / ``after_step`` / ``state_dict``), or, for a trainer without hooks, as a
forward pre-hook on the model (:meth:`TemperatureAnnealing.attach`).
"""
from typing import Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Constant, KaimingNormal

__all__ = ["DynamicConv2D", "KernelAttention", "AggregatedConv2D", "set_temperature", "temperature_at",
           "TemperatureAnnealing"]


class KernelAttention(nn.Layer):
    """pi(x) = softmax(FC_K(ReLU(FC_{C/r}(GAP(x)))) / temperature), one row of K weights per image.

    Args:
        in_channels (int): channels of the layer's input.
        num_kernels (int): K.
        reduction (int): the first FC has ``max(1, in_channels // reduction)`` units
            (the paper reduces by 4). Default: 4.
        temperature (float): softmax temperature tau. Default: 1.0.
    """

    def __init__(self, in_channels: int, num_kernels: int, reduction: int = 4, temperature: float = 1.0):
        super().__init__()
        hidden = max(1, in_channels // reduction)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc1 = nn.Conv2D(in_channels, hidden, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2D(hidden, num_kernels, 1)
        self.temperature = float(temperature)

    def forward(self, x):
        z = self.fc2(self.act(self.fc1(self.pool(x))))
        return F.softmax(paddle.flatten(z, 1) / self.temperature, axis=1)


class AggregatedConv2D(nn.Layer):
    """K kernels ``weight [K, C_out, C_in/groups, kh, kw]`` (and ``bias [K, C_out]``) and the
    convolution with their per-image weighted sum (Eq. 2 of arXiv 1912.03458).

    ``forward(x, attention)`` takes the [N, K] attention. In eager mode each image's kernel
    is aggregated (K * |W| multiply-adds) and the batch runs as ONE grouped convolution
    (``groups = N * groups``), so the convolution itself costs what a static one costs.
    A traced program (``paddle.jit`` export) cannot have batch-dependent groups; it
    convolves with all K kernels and weights the K outputs instead: the same linear map
    (a convolution is linear in its kernel), at K times the convolution's MAdds.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, num_kernels: int = 4, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.groups, self.num_kernels = in_channels, out_channels, groups, num_kernels
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        shape = [num_kernels, out_channels, in_channels // groups, kernel_size, kernel_size]
        self.weight = self.create_parameter(shape, default_initializer=KaimingNormal(fan_in=_fan_out(shape)))
        self.bias = self.create_parameter([num_kernels, out_channels], is_bias=True,
                                          default_initializer=Constant(0.0)) if bias else None

    def forward(self, x, attention):
        k, c_out, g = self.num_kernels, self.out_channels, self.groups
        bias = paddle.matmul(attention, self.bias) if self.bias is not None else None  # [N, C_out]
        if paddle.in_dynamic_mode():  # eager: one aggregated kernel per image
            n, c_in, h, w = x.shape
            kernels = paddle.matmul(attention, self.weight.reshape([k, -1]))  # [N, C_out * C_in/g * kh * kw]
            kernels = kernels.reshape([n * c_out, *self.weight.shape[2:]])
            out = F.conv2d(x.reshape([1, n * c_in, h, w]), kernels, None if bias is None else bias.reshape([-1]),
                           self.stride, self.padding, self.dilation, groups=n * g)
            return out.reshape([n, c_out, out.shape[2], out.shape[3]])
        # traced program (export, any batch): K outputs per group, weighted by the attention
        weight = self.weight.reshape([k, g, c_out // g, *self.weight.shape[2:]]).transpose([1, 0, 2, 3, 4, 5])
        out = F.conv2d(x, weight.reshape([g * k * (c_out // g), *self.weight.shape[2:]]), None, self.stride,
                       self.padding, self.dilation, groups=g)
        oh, ow = out.shape[2], out.shape[3]
        out = out.reshape([-1, g, k, c_out // g, oh * ow]) * attention.reshape([-1, 1, k, 1, 1])
        out = out.sum(axis=2).reshape([-1, c_out, oh, ow])
        return out if bias is None else out + bias.reshape([-1, c_out, 1, 1])


def _fan_out(shape) -> int:
    """He-normal fan-out of one kernel of the bank, as ``init_weights`` gives a static conv."""
    return shape[1] * shape[3] * shape[4]


class DynamicConv2D(nn.Layer):
    """Drop-in replacement for ``nn.Conv2D`` with K kernels mixed by input-dependent attention.

    Takes ``nn.Conv2D``'s leading arguments, so ``ConvNormAct(..., conv_layer=DynamicConv2D)``
    builds the paper's dynamic conv -> BN -> ReLU (Fig. 3: BN and the activation follow
    the aggregated convolution).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): square kernel size.
        stride (int): stride. Default: 1.
        padding (int): padding. Default: 0.
        dilation (int): dilation. Default: 1.
        groups (int): groups (``in_channels`` for a depthwise conv). Default: 1.
        bias_attr: ``False`` for no bias (conv followed by BN), as for ``nn.Conv2D``. Default: None (bias).
        num_kernels (int): K, the number of kernels (the paper uses 4). Default: 4.
        reduction (int): reduction of the attention's first FC. Default: 4.
        temperature (float): softmax temperature; 1 after training. Default: 1.0.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias_attr=None, num_kernels: int = 4, reduction: int = 4,
                 temperature: float = 1.0):
        super().__init__()
        if not isinstance(num_kernels, int) or isinstance(num_kernels, bool) or num_kernels < 1:
            raise ValueError(f"DynamicConv2D: num_kernels (K) must be an int >= 1, got {num_kernels!r}")
        if temperature <= 0:
            raise ValueError(f"DynamicConv2D: temperature must be > 0, got {temperature!r}")
        self.attention = KernelAttention(in_channels, num_kernels, reduction, temperature)
        self.conv = AggregatedConv2D(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                                     num_kernels, bias=bias_attr is not False)

    @property
    def temperature(self) -> float:
        return self.attention.temperature

    def forward(self, x):
        return self.conv(x, self.attention(x))

    @staticmethod
    def training_hook(steps_per_epoch: int, epochs: int) -> "TemperatureAnnealing":
        """The hook a model with these layers needs in training (``ClassifierModel.training_hooks``):
        the paper's 30 -> 1 annealing over its first 10 epochs (of 300), over at most half of a
        shorter run, so the trained weights always end at the inference temperature 1."""
        return TemperatureAnnealing(steps_per_epoch, anneal_epochs=min(10.0, epochs / 2))


def set_temperature(model: nn.Layer, temperature: float) -> int:
    """Set the softmax temperature of every :class:`DynamicConv2D` in ``model``; returns how many."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    layers = [m for m in model.sublayers(include_self=True) if isinstance(m, KernelAttention)]
    for layer in layers:
        layer.temperature = float(temperature)
    return len(layers)


def temperature_at(epoch: float, start: float = 30.0, end: float = 1.0, anneal_epochs: float = 10.0) -> float:
    """The paper's schedule (Sec. 5.1): ``start`` at epoch 0, linearly to ``end`` at
    ``anneal_epochs``, then constant. ``epoch`` may be fractional (step / steps per epoch)."""
    if anneal_epochs <= 0:
        return end
    return start + (end - start) * min(max(epoch, 0.0) / anneal_epochs, 1.0)


class TemperatureAnnealing:
    """Training hook that anneals every dynamic layer's temperature per optimizer step.

    Hook protocol: ``prepare(model)`` sets the start temperature; ``after_step(model, step)``
    with ``step`` = optimizer steps done so far sets the temperature the next forward pass
    uses, ``temperature_at(step / steps_per_epoch)``; ``state_dict()`` /
    ``set_state_dict()`` carry the step so a resumed run continues the schedule exactly.
    The trainer adds it by itself to any model with these layers
    (``ClassifierModel.training_hooks``).

    Args:
        steps_per_epoch (int): optimizer steps per epoch.
        anneal_epochs (float): epochs from ``start`` to ``end``. Default: 10.
        start (float): first temperature. Default: 30.
        end (float): final temperature. Default: 1.
    """

    def __init__(self, steps_per_epoch: int, anneal_epochs: float = 10.0, start: float = 30.0, end: float = 1.0):
        if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(f"TemperatureAnnealing: steps_per_epoch must be an int >= 1, got {steps_per_epoch!r}")
        if start <= 0 or end <= 0:
            raise ValueError(f"TemperatureAnnealing: temperatures must be > 0, got start={start}, end={end}")
        self.steps_per_epoch, self.anneal_epochs, self.start, self.end = steps_per_epoch, anneal_epochs, start, end
        self.step = 0
        self._model: Optional[nn.Layer] = None

    def temperature(self, step: int) -> float:
        return temperature_at(step / self.steps_per_epoch, self.start, self.end, self.anneal_epochs)

    def _apply(self, model) -> None:
        if set_temperature(model, self.temperature(self.step)) == 0:
            raise ValueError(f"TemperatureAnnealing: {type(model).__name__} has no DynamicConv2D layer to anneal")

    def prepare(self, model: nn.Layer) -> nn.Layer:
        self._model = model
        self._apply(model)
        return model

    def after_step(self, model: nn.Layer, step: int) -> None:
        self.step = int(step)
        self._apply(model)

    def state_dict(self) -> dict:
        return {"step": self.step}

    def set_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        if self._model is not None:
            self._apply(self._model)
