"""``Slim.quant`` and ``Slim.export`` as stages of ``tools/compress.py``.

* ``quant: {name: ptq}``: the incoming model is quantized to int8 (Paddle's post-training
  quantization in a legacy-format child process, :func:`~.ptq.export_int8`); its deployed
  form, measured by the report, is the int8 program.
* ``quant: {name: bf16}``: the float32 program run with oneDNN bfloat16 kernels.
* ``export: {precision, weights_dtype}``: how the chain's final model is deployed.

QAT, PACT and binary networks are training methods (``tools/train.py`` with
``Slim.quant``), not post-training stages: a recipe that lists them is refused here with
that advice.
"""
import numpy as np
import paddle

from ...deploy.export import export_model, export_settings
from ..base import StageResult, stage_names
from .ptq import calibration_batches, export_int8

__all__ = ["run_quant", "run_export"]


def _resized(images: np.ndarray, shape) -> np.ndarray:
    """Calibration images at another input size (the latency export, e.g. 224x224)."""
    if list(images.shape[2:]) == list(shape[1:]):
        return images
    out = paddle.nn.functional.interpolate(paddle.to_tensor(images), size=list(shape[1:]), mode="bilinear")
    return out.numpy()


TIMING_CALIB = 16  # images that calibrate an int8 program made only for timing at another size


def _int8(model, ctx, quant: dict, weights_dtype: str = "float32") -> StageResult:
    calib = calibration_batches(ctx.cfg, quant["calib_batches"], quant["batch_size"])
    ctx.logger.info(f"{ctx.key}: int8 post-training quantization ({quant['algo']}) on {len(calib)} training images")
    settings_shape = [int(v) for v in export_settings(ctx.cfg)["input_shape"]]

    def export(folder, shape):
        settings = dict(export_settings(ctx.cfg), input_shape=list(shape))
        images, algo, batch = calib, quant["algo"], quant["batch_size"]
        if list(shape) != list(settings_shape):
            # the latency export (--latency-size): its speed does not depend on the scales, and calibrating
            # every image at 224x224 with a histogram observer takes minutes and ~10 GB on a small-input model
            images, algo = calib[:TIMING_CALIB], "abs_max"
            batch = len(images)
        export_int8(model, folder, _resized(images, shape), arch=ctx.arch, settings=settings, algo=algo,
                    calib_batch=batch, hist_percent=quant["hist_percent"], ops=quant["ops"],
                    weight_quantize_type=quant["weight_quantize_type"], weights_dtype=weights_dtype)

    return StageResult(model, precision="int8", export=export, info={"algo": quant["algo"]})


def _float(model, ctx, precision: str, weights_dtype: str) -> StageResult:
    def export(folder, shape):
        export_model(model, folder, precision=precision, weights_dtype=weights_dtype,
                     **dict(export_settings(ctx.cfg), input_shape=list(shape)))

    return StageResult(model, precision=precision, export=export, info={"weights_dtype": weights_dtype})


def run_quant(model, ctx) -> StageResult:
    quant = ctx.params
    if quant["name"] == "ptq":
        return _int8(model, ctx, quant)
    if quant["name"] == "bf16":
        return _float(model, ctx, "bf16", "float32")
    raise ValueError(f"Slim.quant.name: {quant['name']} trains the model (quantization-aware / binary): run it with "
                     f"tools/train.py, then compress the result; tools/compress.py runs ptq and bf16 "
                     f"(stages: {', '.join(stage_names())})")


def run_export(model, ctx) -> StageResult:
    p = ctx.params
    if p["precision"] == "int8":
        from .spec import check_quant

        quant = (ctx.cfg.get("Slim") or {}).get("quant")
        return _int8(model, ctx, quant if quant and quant["name"] == "ptq" else check_quant({"name": "ptq"}, ctx.cfg),
                     p["weights_dtype"])
    return _float(model, ctx, p["precision"], p["weights_dtype"])
