"""Quantization: int8 post-training (PTQ) and quantization-aware training (QAT, PACT, LSQ),
bf16 inference, float16 weight storage and binary networks.

* ``spec``: the ``Slim.quant`` and ``Slim.export`` stages (checkers);
* ``ptq``: calibration images, :func:`export_int8` (PTQ or a QAT model -> int8 folder);
* ``qat``: quanters (PACT, LSQ), :func:`wrap_for_qat`, the training hook (``Slim.quant.name:
  qat | pact`` through ``tools/train.py``);
* ``legacy``: the child process that writes int8 programs (legacy program format);
* ``binary``: binarizing a trained model (``Slim.quant.name: binary``), bit-packed export.

docs/compression.md, section "Quantization", is the user guide.
"""
from . import spec  # noqa: F401  (registers Slim.quant and Slim.export)
from .ptq import agreement, calibration_batches, export_int8, quantize_from_config
from .qat import LSQActivation, LSQWeight, PACT, QuantAwareHook, QuantizationError, wrap_for_qat
from .binary import binarize_model, load_packed, save_packed

__all__ = ["calibration_batches", "export_int8", "quantize_from_config", "agreement", "PACT", "LSQActivation",
           "LSQWeight", "QuantAwareHook", "QuantizationError", "wrap_for_qat", "binarize_model", "save_packed",
           "load_packed"]
