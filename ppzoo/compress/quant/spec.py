"""The ``Slim.quant`` and ``Slim.export`` config stages (checkers only; no Paddle import).

``Slim.quant.name`` picks the method:

* ``ptq``: post-training int8 with calibration images (``algo``, ``calib_batches``,
  ``batch_size``, ``hist_percent``, ``ops``, ``weight_quantize_type``);
* ``qat``: quantization-aware training with ``act_quanter`` / ``weight_quanter`` in
  ``abs_max | lsq`` (activations also ``pact``), through ``tools/train.py``;
* ``pact``: PaddleClas's spelling, QAT with PACT activations and abs-max weights;
* ``bf16``: no change to the weights; the export runs oneDNN bfloat16 kernels;
* ``binary``: binary weights (and optionally activations) fine-tuned through
  ``tools/train.py`` (``activations``, ``shortcut``, ``keep``).
"""
from typing import List, Optional

from ..base import register_stage
from ...config import ConfigError, check_keys

__all__ = ["METHODS", "ALGOS", "QUANT", "EXPORT", "check_quant", "check_export", "DEFAULT_OPS", "QUANTIZABLE_OPS"]

METHODS = ("ptq", "qat", "pact", "bf16", "binary")
ALGOS = ("abs_max", "avg", "hist", "KL", "mse")
ACT_QUANTERS = ("abs_max", "lsq", "pact")
WEIGHT_QUANTERS = ("abs_max", "lsq")
DEFAULT_OPS = ["conv2d", "depthwise_conv2d", "matmul_v2"]
# the legacy-program op types Paddle's PostTrainingQuantization can give int8 weights
QUANTIZABLE_OPS = ("conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul", "matmul_v2")

QUANT = {
    "name": (str, None),
    # ptq
    "algo": (str, "hist"),
    "calib_batches": (int, 10),
    "batch_size": (int, 32),
    "hist_percent": (float, 0.9999),
    "ops": (List[str], DEFAULT_OPS),
    "weight_quantize_type": (str, "channel_wise_abs_max"),
    # qat / pact
    "act_quanter": (Optional[str], None),
    "weight_quanter": (str, "abs_max"),
    "moving_rate": (float, 0.9),
    "pact_init": (float, 6.0),
    # binary
    "activations": (bool, False),
    "shortcut": (bool, True),
    "keep": (Optional[List[str]], None),
    # the stage runner (tools/compress.py): fine-tuning epochs of a training method
    "fine_tune_epochs": (int, 1),
}
_OWN_KEYS = {  # keys that mean something only for some methods
    "algo": ("ptq",), "calib_batches": ("ptq",), "hist_percent": ("ptq",), "ops": ("ptq",),
    "weight_quantize_type": ("ptq",), "act_quanter": ("qat", "pact"), "weight_quanter": ("qat", "pact"),
    "moving_rate": ("qat", "pact"), "pact_init": ("qat", "pact"), "activations": ("binary",),
    "shortcut": ("binary",), "keep": ("binary",), "fine_tune_epochs": ("qat", "pact", "binary"),
}
EXPORT = {"precision": (str, "fp32"), "weights_dtype": (str, "float32")}


def _one_of(value, valid, key: str) -> None:
    if value not in valid:
        raise ConfigError(f"'{key}' must be one of {', '.join(valid)}, got {value!r}", key=key)


def check_quant(section, resolved: dict) -> dict:
    """Check ``Slim.quant``; returns it with the defaults of its method filled."""
    given = dict(section or {}) if isinstance(section, dict) else section
    out = check_keys(given, QUANT, "Slim.quant")
    name = out["name"]
    if name is None:
        raise ConfigError(f"'Slim.quant' needs a name: one of {', '.join(METHODS)}", key="Slim.quant.name")
    _one_of(name, METHODS, "Slim.quant.name")
    for key in given:
        owners = _OWN_KEYS.get(key)
        if owners and name not in owners:
            raise ConfigError(f"'Slim.quant.{key}' applies to name {' / '.join(owners)}, not {name}",
                              key=f"Slim.quant.{key}")
    if out["algo"] not in ALGOS:
        raise ConfigError(f"'Slim.quant.algo': unknown observer {out['algo']!r}; valid: {', '.join(ALGOS)}",
                          key="Slim.quant.algo")
    for key in ("calib_batches", "batch_size", "fine_tune_epochs"):
        if out[key] < 1:
            raise ConfigError(f"'Slim.quant.{key}' must be >= 1, got {out[key]}", key=f"Slim.quant.{key}")
    if not 0.0 < out["hist_percent"] <= 1.0:
        raise ConfigError(f"'Slim.quant.hist_percent' must be in (0, 1], got {out['hist_percent']}",
                          key="Slim.quant.hist_percent")
    bad = [op for op in out["ops"] if op not in QUANTIZABLE_OPS]
    if bad or not out["ops"]:
        raise ConfigError(f"'Slim.quant.ops': {', '.join(bad) or 'an empty list'} cannot hold int8 weights; valid: "
                          f"{', '.join(QUANTIZABLE_OPS)}", key="Slim.quant.ops")
    _one_of(out["weight_quantize_type"], ("channel_wise_abs_max", "abs_max"), "Slim.quant.weight_quantize_type")
    if out["act_quanter"] is None:
        out["act_quanter"] = "pact" if name == "pact" else "abs_max"
    _one_of(out["act_quanter"], ACT_QUANTERS, "Slim.quant.act_quanter")
    if name == "pact" and out["act_quanter"] != "pact":
        raise ConfigError(f"'Slim.quant.name: pact' means PACT activations; got act_quanter {out['act_quanter']!r} "
                          "(use name: qat for other quanters)", key="Slim.quant.act_quanter")
    _one_of(out["weight_quanter"], WEIGHT_QUANTERS, "Slim.quant.weight_quanter")
    if not 0.0 < out["moving_rate"] < 1.0:
        raise ConfigError(f"'Slim.quant.moving_rate' must be in (0, 1), got {out['moving_rate']}",
                          key="Slim.quant.moving_rate")
    if not out["pact_init"] > 0:
        raise ConfigError(f"'Slim.quant.pact_init' must be > 0, got {out['pact_init']}", key="Slim.quant.pact_init")
    return out


def check_export(section, resolved: dict) -> dict:
    """Check ``Slim.export``: ``precision`` fp32 | bf16 | int8, ``weights_dtype`` float32 | float16."""
    out = check_keys(section, EXPORT, "Slim.export")
    _one_of(out["precision"], ("fp32", "bf16", "int8"), "Slim.export.precision")
    _one_of(out["weights_dtype"], ("float32", "float16"), "Slim.export.weights_dtype")
    return out


def _run_quant(model, ctx):
    from .stage import run_quant

    return run_quant(model, ctx)


def _run_export(model, ctx):
    from .stage import run_export

    return run_export(model, ctx)


register_stage("quant", check_quant, order=40, run=_run_quant,
               doc="int8 post-training / quantization-aware training, bf16, binary")
register_stage("export", check_export, order=50, run=_run_export, doc="inference export: precision and weights storage dtype")
