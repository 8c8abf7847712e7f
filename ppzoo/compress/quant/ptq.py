"""int8 export: post-training quantization with calibration images, or a QAT model's
learned scales, written as an inference folder the predictor runs with oneDNN int8.

    from ppzoo.compress.quant import calibration_batches, export_int8
    calib = calibration_batches(cfg, calib_batches=10, batch_size=32)   # training images, eval transforms
    meta = export_int8(model, "inference_int8", calib, arch=cfg["Arch"], algo="hist", cfg=cfg)
    meta["checks"]        # top-1 agreement and cosine of the int8 predictor against the model

Observers (``algo``; Paddle's ``PostTrainingQuantization``, activation thresholds per tensor,
weights always per output channel with ``weight_quantize_type: channel_wise_abs_max``):

* ``abs_max``: the largest |x| over all calibration batches;
* ``avg``: the mean over batches of the batch-mean of each sample's max |x|;
* ``hist``: the ``hist_percent`` quantile of |x| from a 2048-bin histogram;
* ``KL``: the threshold minimising the KL divergence between the |x| histogram and its
  int8-quantized version (TensorRT's calibration);
* ``mse``: the threshold in {0.30, 0.32, ..., 1.00} x max|x| minimising the quantize-dequantize
  mean squared error.

The quantization itself runs in a child process (``ppzoo.compress.quant.legacy``) because
it needs Paddle's legacy program format; this process stays on PIR.
"""
import json
import os
import subprocess
import sys
import tempfile
from typing import Optional, Sequence

import numpy as np
import paddle

from ..base import arch_record
from .onednn_issues import KNOWN_ISSUES
from ...deploy.export import (FP16_PARAMS, PROGRAM_FILES, ExportError, build_metadata, cosine, export_settings,
                              store_weights_as, write_metadata)

__all__ = ["calibration_batches", "export_int8", "quantize_from_config", "run_job", "agreement", "onednn_ops"]

LEGACY_FILES = {"program": "inference.pdmodel", "params": "inference.pdiparams"}
# op types oneDNN's int8 placement pass accepts (checked on Paddle 3.3.1; used when one must be left out)
ONEDNN_INT8_OPS = ("concat", "conv2d", "depthwise_conv2d", "fused_conv2d", "elementwise_add", "elementwise_mul", "fc",
                   "matmul", "matmul_v2", "pool2d", "reshape2", "slice", "split", "transpose2")


def calibration_batches(cfg: dict, calib_batches: int, batch_size: int, seed: int = 0) -> np.ndarray:
    """``calib_batches * batch_size`` images of ``DataLoader.Train``'s dataset, drawn at random
    (seeded) and transformed with ``DataLoader.Eval``'s transforms (the deployed
    preprocessing), as one float32 NCHW array (:func:`ppzoo.data.sample_images`)."""
    from ...data import sample_images

    return sample_images(cfg, calib_batches * batch_size, seed,
                         key=f"Slim.quant.calib_batches x batch_size = {calib_batches} x {batch_size}")


def agreement(output: np.ndarray, reference: np.ndarray) -> dict:
    """Top-1 agreement (%) and cosine of two output batches."""
    return {"top1_agreement": float(100.0 * np.mean(output.argmax(-1) == reference.argmax(-1))),
            "cosine": cosine(output, reference)}


def onednn_ops(model_dir: str, threads: int = 1) -> dict:
    """What oneDNN runs an int8 folder as: op types of the predictor's optimised program by
    the data type its passes chose (``{"int8": {type: count}, "float32": {...}}``); the
    ``quantize`` / ``dequantize`` ops are the conversions between the two."""
    import paddle.inference as paddle_infer
    from paddle.base import core

    from ...deploy.export import read_metadata

    meta = read_metadata(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        config = paddle_infer.Config(os.path.join(model_dir, meta["files"]["program"]),
                                     os.path.join(model_dir, meta["files"]["params"]))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        config.enable_onednn()
        ops = (meta.get("quantization") or {}).get("onednn_int8_op_types")
        config.enable_onednn_int8(set(ops) if ops else set())
        config.disable_glog_info()
        config.enable_save_optim_model(True)
        config.set_optim_cache_dir(tmp)
        paddle_infer.create_predictor(config)
        with open(os.path.join(tmp, "_optimized.pdmodel"), "rb") as f:
            desc = core.ProgramDesc(f.read())
    block, out = desc.block(0), {"int8": {}, "float32": {}, "conversions": {}}
    for i in range(block.op_size()):
        op = block.op(i)
        kind = op.type()
        if kind in ("feed", "fetch"):
            continue
        if kind in ("quantize", "dequantize", "requantize"):
            group = "conversions"
        else:
            group = "int8" if op.has_attr("mkldnn_data_type") and op.attr("mkldnn_data_type") == "int8" else "float32"
        out[group][kind] = out[group].get(kind, 0) + 1
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def run_job(job: dict, workdir: str, log_path: Optional[str] = None) -> dict:
    """Run ``ppzoo.compress.quant.legacy`` on ``job`` in a child process with
    ``FLAGS_enable_pir_api=0``; returns its ``quant_info.json``. Its output goes to
    ``log_path`` (default ``workdir/quant.log``)."""
    path = os.path.join(workdir, "job.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(job, f)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["FLAGS_enable_pir_api"] = "0"
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    result = subprocess.run([sys.executable, "-m", "ppzoo.compress.quant.legacy", path], capture_output=True,
                            text=True, env=env, cwd=workdir)
    log_path = log_path or os.path.join(workdir, "quant.log")
    with open(log_path, "w", encoding="utf-8") as f:
        f.write(result.stdout + result.stderr)
    if result.returncode < 0:
        raise ExportError(f"int8 quantization failed: the child process was killed by signal {-result.returncode}"
                          f"{' (out of memory? use fewer or smaller calibration batches)' if result.returncode == -9 else ''}"
                          f" (log: {log_path})")
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "Error" in line or line.startswith("error")]
        raise ExportError(f"int8 quantization failed: {(errors or lines or ['no output'])[-1]} (log: {log_path})")
    with open(os.path.join(job["out"], "quant_info.json"), encoding="utf-8") as f:
        return json.load(f)


def export_int8(model: paddle.nn.Layer, save_dir: str, calib: np.ndarray, *, arch: Optional[dict] = None,
                cfg: Optional[dict] = None, settings: Optional[dict] = None, qat: Optional[dict] = None,
                algo: str = "hist", calib_batch: int = 32, hist_percent: float = 0.9999,
                ops: Sequence[str] = ("conv2d", "depthwise_conv2d", "matmul_v2"),
                weight_quantize_type: str = "channel_wise_abs_max", batch_size: Optional[int] = None,
                weights_dtype: str = "float32", threads: Optional[int] = None) -> dict:
    """Quantize ``model`` to an int8 inference folder and return its metadata.

    Args:
        model: the float32 model (post-training), or a model wrapped by
            :func:`~ppzoo.compress.quant.qat.wrap_for_qat` and trained (``qat`` given).
        save_dir: the output folder (``inference.pdmodel``, ``inference.pdiparams``,
            ``inference.yml`` with ``precision: int8``, ``quant_info.json``).
        calib: NCHW float32 images: the calibration set (PTQ) and, for both modes, the
            images the int8 predictor is checked on (:func:`calibration_batches`).
        arch: the model's ``Arch`` section (not needed for a model compressed by a pass).
        cfg: the resolved config, for the input shape, preprocessing and class names
            (else ``settings``: :func:`ppzoo.deploy.export.export_settings`' keywords).
        qat: the checked ``Slim.quant`` of a QAT-trained ``model`` (None: post-training).
        algo, hist_percent: the activation observer (PTQ); see the module docstring.
        calib_batch: images per calibration batch; ``len(calib) // calib_batch`` batches run.
        ops: op types that get int8 weights (legacy program names).
        weight_quantize_type: "channel_wise_abs_max" (per output channel) or "abs_max".
        batch_size: fixed batch of the program (None: dynamic).
        weights_dtype: "float16" also stores the float tensors left (biases, scales) as halves.
        threads: CPU threads of the check run. Default: one per core.
    """
    from .qat import QuantizationError, check_quantizable

    if settings is None:
        if cfg is None:
            raise ValueError("export_int8 needs cfg (the resolved config) or settings (export_settings keywords)")
        settings = export_settings(cfg)
    if qat is None:
        try:
            check_quantizable(model)
        except QuantizationError as e:
            raise QuantizationError(f"post-training quantization: {e}") from None
    elif not hasattr(model, "_ppzoo_quant"):
        raise QuantizationError("qat settings given, but the model was not wrapped by wrap_for_qat")
    calib = np.ascontiguousarray(calib, dtype="float32")
    n_batches = len(calib) // calib_batch
    if len(calib) == 0 or (qat is None and n_batches < 1):
        raise ValueError(f"the calibration set is empty or smaller than one batch ({len(calib)} images, batch "
                         f"{calib_batch})")
    input_shape = [int(v) for v in settings["input_shape"]]
    if list(calib.shape[1:]) != input_shape:
        raise ValueError(f"calibration images are {list(calib.shape[1:])}, the model input is {input_shape}")
    record = arch_record(model, arch)  # QAT wraps in place: the record is the float model's
    was_training = model.training
    model.eval()
    check = calib[:min(len(calib), 64)]
    with paddle.no_grad():
        logits = model(paddle.to_tensor(check))
        reference = (paddle.nn.functional.softmax(logits, -1) if settings["add_softmax"] else logits).numpy()
    os.makedirs(save_dir, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=save_dir) as work:
            out = os.path.join(work, "model")
            arch_file = os.path.join(work, "model.arch.json")
            with open(arch_file, "w", encoding="utf-8") as f:
                json.dump(record, f)
            weights = os.path.join(work, "weights.pdparams")
            paddle.save(model.state_dict(), weights)
            np.save(os.path.join(work, "calib.npy"), calib)
            job = {"mode": "qat" if qat else "ptq", "arch_file": arch_file, "weights": weights,
                   "input_shape": input_shape, "batch_size": batch_size, "add_softmax": settings["add_softmax"],
                   "calib": os.path.join(work, "calib.npy"), "calib_batch": calib_batch, "calib_batches": n_batches,
                   "algo": algo, "hist_percent": hist_percent, "ops": list(ops),
                   "weight_quantize_type": weight_quantize_type, "qat": qat, "out": out}
            info = run_job(job, work, os.path.join(save_dir, "quant.log"))
            for extra in ("inference.pdiparams.info",):
                if os.path.exists(os.path.join(out, extra)):
                    os.remove(os.path.join(out, extra))
            meta = build_metadata(settings["name"] or type(model).__name__, [batch_size, *input_shape],
                                  reference.shape[-1], settings["add_softmax"], settings["preprocess"],
                                  settings["topk"], settings["class_names"], "int8", dict(LEGACY_FILES))
            meta["quantization"] = {"method": "qat" if qat else "ptq", **(
                {"act_quanter": qat["act_quanter"], "weight_quanter": qat["weight_quanter"]} if qat else
                {"algo": algo, "calib_images": int(n_batches * calib_batch), "weight_quantize_type": weight_quantize_type,
                 "ops": list(ops)})}
            # what oneDNN int8 gets wrong stays float32 (onednn_issues); inference.yml says which
            convs = info.get("float32_conv_weights") or []
            if qat:
                convs = [name for name, layer in model.named_sublayers() if getattr(layer, "skip_quant", False)]
            if convs:
                meta["quantization"]["float32_layers"] = {"why": KNOWN_ISSUES["grouped_conv"], "count": len(convs),
                                                          "names": sorted(convs)}
            float32_ops = {"fc": KNOWN_ISSUES["fc"]}
            if info.get("padded_avg_pools"):
                float32_ops["pool2d"] = f"{len(info['padded_avg_pools'])} {KNOWN_ISSUES['padded_avg_pool']}"
            meta["quantization"]["onednn_int8_op_types"] = sorted(set(ONEDNN_INT8_OPS) - set(float32_ops))
            meta["quantization"]["float32_ops"] = float32_ops
            write_metadata(out, meta)
            from ...deploy.predictor import Predictor

            try:
                output = Predictor(out, threads=threads, quiet=True).run(check)
            except (RuntimeError, ValueError) as e:
                if "primitive" not in str(e):
                    raise
                # oneDNN could not build an int8 kernel for one op (AlexNet's LRN window concat): run concat in
                # float32 and say so in inference.yml
                kept = meta["quantization"].get("onednn_int8_op_types") or ONEDNN_INT8_OPS
                meta["quantization"]["onednn_int8_op_types"] = sorted(set(kept) - {"concat"})
                meta["quantization"]["note"] = f"concat kept float32: oneDNN int8 failed ({str(e).splitlines()[0]})"
                write_metadata(out, meta)
                output = Predictor(out, threads=threads, quiet=True).run(check)
            meta["quantization"]["onednn_ops"] = onednn_ops(out)
            against = "the QAT model (fake-quantized, dygraph)" if qat else "the float32 model (dygraph)"
            meta["checks"] = {**agreement(output, reference), "images": int(len(check)), "against": against}
            write_metadata(out, meta)
            if weights_dtype != "float32":
                meta = store_weights_as(out, meta, weights_dtype, check, output)
            for name in (*PROGRAM_FILES, "inference.pdiparams", FP16_PARAMS, "quant_info.json", "inference.yml"):
                if os.path.exists(os.path.join(save_dir, name)) and not os.path.exists(os.path.join(out, name)):
                    os.remove(os.path.join(save_dir, name))  # an older export of another kind: would mix
            for name in os.listdir(out):
                os.replace(os.path.join(out, name), os.path.join(save_dir, name))
    finally:
        if was_training:
            model.train()
    return meta


def quantize_from_config(cfg: dict, batch_size: Optional[int] = None, weights_dtype: str = "float32",
                         save_dir: Optional[str] = None) -> dict:
    """What ``tools/export.py --precision int8`` does: build ``Arch``, load
    ``Global.pretrained_model`` (float32 weights: post-training quantization with
    ``Slim.quant``'s settings, defaults when absent; the state of a QAT run with
    ``Slim.quant.name: qat | pact``: its learned scales) and write the int8 folder to
    ``Global.save_inference_dir``."""
    from ...registry import build_from_arch
    from ...utils.weights import read_state_dict
    from .qat import QAT_METHODS, is_qat_state, wrap_for_qat
    from .spec import check_quant

    g = cfg["Global"]
    if not g["pretrained_model"]:
        raise ExportError("int8 needs trained weights: set -o Global.pretrained_model=PATH")
    quant = (cfg.get("Slim") or {}).get("quant") or check_quant({"name": "ptq"}, cfg)
    state = read_state_dict(g["pretrained_model"])
    model = build_from_arch(cfg["Arch"], for_inference=True)
    qat = None
    if is_qat_state(state):
        if quant["name"] not in QAT_METHODS:
            raise ExportError(f"{g['pretrained_model']} holds a QAT model (fake-quant scales); set "
                              "Slim.quant.name to the qat / pact settings it was trained with")
        wrap_for_qat(model, quant)
        model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
        qat = quant
    else:
        if quant["name"] != "ptq":
            raise ExportError(f"Slim.quant.name is {quant['name']}, but {g['pretrained_model']} holds float32 weights; "
                              "post-training int8 needs Slim.quant.name: ptq (or train with QAT first)")
        from ...utils.weights import load_weights

        load_weights(model, g["pretrained_model"])
    calib = calibration_batches(cfg, quant["calib_batches"] if qat is None else 2, quant["batch_size"])
    kwargs = {} if qat else {"algo": quant["algo"], "hist_percent": quant["hist_percent"], "ops": quant["ops"],
                             "weight_quantize_type": quant["weight_quantize_type"]}
    return export_int8(model, save_dir or g["save_inference_dir"], calib, arch=cfg["Arch"], cfg=cfg, qat=qat,
                       calib_batch=quant["batch_size"], batch_size=batch_size, weights_dtype=weights_dtype, **kwargs)
