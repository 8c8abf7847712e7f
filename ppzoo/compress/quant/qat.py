"""Quantization-aware training: fake-quantized Conv2D/Linear, trained through ``tools/train.py``.

The wrapping is Paddle's ``ImperativeQuantAware`` (what PaddleSlim's QAT and PaddleClas's
``Slim.quant.name: pact`` build on): each ``Conv2D`` / ``Linear`` becomes a quantized layer
whose input goes through a moving-average abs-max fake quantizer (int8, straight-through
gradient) and whose weight goes through a per-output-channel abs-max fake quantizer. Three
activation choices and two weight choices sit in front of those as *preprocess* layers:

* ``act_quanter: abs_max`` (plain), ``pact``: :class:`PACT` learns the clipping level
  alpha of each quantized input (Choi et al. 2018, "PACT", eq. 1-3; PaddleSlim's symmetric
  form ``clip(x, -alpha, alpha)``), ``lsq``: :class:`LSQActivation` learns the step size
  (Esser et al. 2020, "Learned Step Size Quantization", eq. 1-3 and the gradient scale
  ``g = 1 / sqrt(N Q_P)`` of section 2.2);
* ``weight_quanter: abs_max`` (plain) or ``lsq``: :class:`LSQWeight`, one learned step per
  output channel.

The exported int8 program (``ppzoo.compress.quant.legacy``) is the same computation: the
preprocess layers stay in the graph (cheap elementwise float32 ops) except LSQ on weights,
which is baked into the weights first (it is data independent), so training and deployment
agree exactly. :class:`QuantAwareHook` plugs this into the trainer: ``prepare`` wraps the
model before the optimizer is built (so alphas and steps are trained), every scale lives in
the model's state dict (so a resumed run continues exactly), and ``finalize`` writes the
int8 inference folder.
"""
import math
import os
from typing import Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..base import TrainingParts, register_training_method
from .onednn_issues import grouped_conv_unsafe

__all__ = ["PACT", "LSQActivation", "LSQWeight", "wrap_for_qat", "QuantAwareHook", "QAT_METHODS", "is_qat_state",
           "QuantizationError", "check_quantizable"]

QAT_METHODS = ("qat", "pact")
QMAX = 127  # symmetric int8 levels: [-128, 127] for activations in LSQ, weights [-127, 127]


class QuantizationError(ValueError):
    """The model cannot be quantized as asked (names the layer)."""


def _grad_scale(x: paddle.Tensor, scale: float) -> paddle.Tensor:
    """``x`` in the forward pass; gradient multiplied by ``scale`` (LSQ, section 2.2)."""
    return (x - x * scale).detach() + x * scale


def _round(x: paddle.Tensor) -> paddle.Tensor:
    """Round half away from zero, from ops the legacy program format can trace (Paddle
    3.3's ``round``, ``sign``, ``abs`` and ``floor`` cannot be traced there): truncate
    ``x +- 0.5`` with a cast."""
    half = paddle.where(x >= 0, x * 0.0 + 0.5, x * 0.0 - 0.5)
    return paddle.cast(paddle.cast(x + half, "int32"), x.dtype)


def _round_ste(x: paddle.Tensor) -> paddle.Tensor:
    """round(x) forward, identity gradient (the straight-through estimator)."""
    return x + (_round(x) - x).detach()


class PACT(nn.Layer):
    """``clip(x, -alpha, alpha)`` with a learned alpha: ``x - relu(x - a) + relu(-a - x)``,
    whose gradient wrt alpha is +1 above alpha, -1 below -alpha, 0 between (PACT eq. 3).

    Args:
        init (float): initial alpha. Default: 20.0 (PaddleSlim's).
    """

    def __init__(self, init: float = 20.0):
        super().__init__()
        self.alpha = self.create_parameter([1], default_initializer=nn.initializer.Constant(init))

    def forward(self, x):
        return x - F.relu(x - self.alpha) + F.relu(-self.alpha - x)


class LSQActivation(nn.Layer):
    """LSQ fake quantization of an activation: ``clip(round(x / s), -128, 127) * s`` with a
    learned step ``s``, initialised on the first training batch to ``2 mean|x| / sqrt(Q_P)``
    (LSQ section 2.1). The init flag is a buffer, so a resumed run does not re-initialise."""

    def __init__(self):
        super().__init__()
        self.step = self.create_parameter([1], default_initializer=nn.initializer.Constant(1.0))
        self.register_buffer("initialized", paddle.zeros([1], dtype="float32"))

    def forward(self, x):
        if self.training and paddle.in_dynamic_mode() and float(self.initialized) == 0.0:
            with paddle.no_grad():
                self.step.set_value(paddle.clip(2.0 * x.abs().mean() / math.sqrt(QMAX), min=1e-8).reshape([1]))
                self.initialized.set_value(paddle.ones([1]))
        g = 1.0 / math.sqrt(math.prod(x.shape[1:]) * QMAX)  # N: features per sample (static shapes too)
        s = _grad_scale(self.step, g)
        return _round_ste(paddle.clip(x / s, -QMAX - 1, QMAX)) * s


class LSQWeight(nn.Layer):
    """LSQ on a weight, one step per output channel (axis 0 of a conv weight
    [out, in, kh, kw], axis 1 of a Linear weight [in, out]), initialised from the weight:
    ``s_c = 2 mean|w_c| / sqrt(Q_P)``; levels [-127, 127].

    Args:
        weight (paddle.Tensor): the weight to quantize (for its shape and the init).
        axis (int): the output-channel axis.
    """

    def __init__(self, weight: paddle.Tensor, axis: int):
        super().__init__()
        self.axis = axis
        reduce = [d for d in range(weight.ndim) if d != axis]
        init = paddle.clip(2.0 * weight.abs().mean(axis=reduce) / math.sqrt(QMAX), min=1e-8)
        self.step = self.create_parameter(init.shape, default_initializer=nn.initializer.Assign(init.numpy()))
        self._shape = [-1 if d == axis else 1 for d in range(weight.ndim)]
        self._per_channel = int(weight.numel().item()) // weight.shape[axis]

    def forward(self, w):
        s = _grad_scale(self.step, 1.0 / math.sqrt(self._per_channel * QMAX)).reshape(self._shape)
        return _round_ste(paddle.clip(w / s, -QMAX, QMAX)) * s


def check_quantizable(model: nn.Layer) -> None:
    """Refuse models int8 QAT cannot wrap: already quantized ones and binary layers (whose
    1-bit weights a fake int8 quantizer would replace), naming the layer."""
    from ...layers.binary import BinaryConv2D, BinaryLinear

    for name, layer in model.named_sublayers():
        kind = type(layer).__name__
        if kind.startswith("Quantized") or hasattr(layer, "_fake_quant_input"):
            raise QuantizationError(f"layer '{name}' is already quantized ({kind}); quantize the float32 model, "
                                    "not a quantized one")
        if isinstance(layer, (BinaryConv2D, BinaryLinear)):
            raise QuantizationError(f"layer '{name}' is a {kind} (1-bit weights): int8 fake quantization cannot be "
                                    "applied to it; quantize a model without binary layers")


def wrap_for_qat(model: nn.Layer, params: dict) -> nn.Layer:
    """Replace every Conv2D/Linear of ``model`` (in place) by Paddle's quantized layer with
    the quanters ``params`` (a checked ``Slim.quant``) names; returns ``model``. Deterministic:
    the export process calls it on a fresh model and loads the trained state."""
    from paddle.quantization import ImperativeQuantAware

    check_quantizable(model)
    act = params["act_quanter"]
    init = float(params.get("pact_init", 20.0))

    class _PACT(PACT):  # ImperativeQuantAware instantiates the preprocess class without arguments
        def __init__(self):
            super().__init__(init)

    preprocess = {"pact": _PACT, "lsq": LSQActivation}.get(act)
    for layer in model.sublayers():  # what oneDNN int8 gets wrong is not quantized (onednn_issues, rule 1)
        if isinstance(layer, nn.Conv2D) and grouped_conv_unsafe(layer._in_channels, layer._groups):
            layer.skip_quant = True
    ImperativeQuantAware(weight_quantize_type="channel_wise_abs_max",
                         activation_quantize_type="moving_average_abs_max", moving_rate=params["moving_rate"],
                         act_preprocess_layer=preprocess, onnx_format=True).quantize(model)
    if params["weight_quanter"] == "lsq":
        for layer in model.sublayers():
            if hasattr(layer, "_fake_quant_weight") and hasattr(layer, "weight"):
                axis = 1 if "Linear" in type(layer).__name__ else 0
                layer._weight_preprocess = LSQWeight(layer.weight, axis)
    model._ppzoo_quant = {"method": "qat", "act_quanter": act, "weight_quanter": params["weight_quanter"]}
    return model


def bake_weight_quanters(model: nn.Layer) -> None:
    """Write LSQ-quantized weights into the layers and drop the weight preprocess (the
    export's abs-max weight quantizer then reproduces training's forward pass)."""
    with paddle.no_grad():
        for layer in model.sublayers():
            pre = getattr(layer, "_weight_preprocess", None)
            if pre is not None:
                layer.weight.set_value(pre(layer.weight))
                layer._weight_preprocess = None


def is_qat_state(state: dict) -> bool:
    """Does a state dict come from a QAT-wrapped model?"""
    return any("_fake_quant_weight" in k or "_fake_quant_input" in k for k in state)


class QuantAwareHook:
    """The QAT training hook: ``prepare`` wraps the model, ``finalize`` exports int8.

    Args:
        params (dict): the checked ``Slim.quant`` section.
        cfg (dict, optional): the resolved config; with it, ``finalize`` writes the int8
            inference folder ``<output_dir>/<arch>/int8_inference`` (input size,
            preprocessing and class names from the config).
    """

    name = "QuantAwareTraining"

    def __init__(self, params: dict, cfg: Optional[dict] = None):
        self.params, self.cfg = params, cfg
        self.exported = None

    def prepare(self, model):
        return wrap_for_qat(model, self.params)

    def finalize(self, model):
        if self.cfg is None:
            return model
        from .ptq import calibration_batches, export_int8

        cfg = self.cfg
        folder = os.path.join(cfg["Global"]["output_dir"], cfg["Arch"]["name"], "int8_inference")
        check = calibration_batches(cfg, 2, 32)
        self.exported = export_int8(model, folder, check, arch=cfg["Arch"], qat=self.params, cfg=cfg)
        return model


@register_training_method
def qat_training(cfg: dict, model, loss_fn) -> Optional[TrainingParts]:
    """``Slim.quant.name: qat | pact`` -> the QAT hook."""
    quant = (cfg.get("Slim") or {}).get("quant")
    if not quant or quant["name"] not in QAT_METHODS:
        return None
    return TrainingParts(hooks=[QuantAwareHook(quant, cfg)])
