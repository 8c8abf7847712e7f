"""The int8 export, run in a process of its own: ``python -m ppzoo.compress.quant.legacy JOB.json``.

Paddle 3.3's int8 path that runs end to end in the predictor needs the legacy program
format (``.pdmodel``), which ``paddle.jit.save`` writes only when ``FLAGS_enable_pir_api=0``
is set before Paddle is imported; the new ``paddle.quantization`` export does not load in
the predictor. A process has one program format, so :func:`ppzoo.compress.quant.ptq.run_job`
starts this module with the flag in its environment and the calling process stays on PIR.

The job (JSON) names the architecture file, the weights, the input shape and either
calibration batches (``mode: ptq``: ``paddle.static.quantization.PostTrainingQuantization``
with per-channel weights, ``onnx_format=True``) or a QAT state (``mode: qat``: the same
``wrap_for_qat`` wrapping, then ``ImperativeQuantAware.save_quantized_model``). It writes
``inference.pdmodel`` / ``inference.pdiparams`` and ``quant_info.json`` (the activation
thresholds the observer chose, by tensor name).
"""
import json
import os
import sys
import tempfile

import numpy as np

__all__ = ["main"]


def _require_legacy():
    import paddle

    if paddle.framework.use_pir_api():
        raise SystemExit("error: FLAGS_enable_pir_api=0 must be set in the environment before Paddle is imported "
                         "(run this module through ppzoo.compress.quant.ptq.run_job)")
    return paddle


def _traceable():
    """LRN's and channel shuffle's plain-op forms (those written for ONNX): Paddle's own
    ``local_response_norm`` calls ``paddle.multiply``, which the legacy tracer rejects
    ("argument must be Value, but got Variable")."""
    from ...layers.onnx_compat import onnx_compatible

    return onnx_compatible()


def _build(job, paddle):
    # running as ``python -m`` imported the ppzoo package first: models, passes and the
    # .arch.json loader are registered
    from ...registry import create_model
    from ...utils.weights import load_weights

    model = create_model(job["arch_file"])
    if job["mode"] == "qat":
        from .qat import bake_weight_quanters, wrap_for_qat

        wrap_for_qat(model, job["qat"])
        model.set_state_dict(paddle.load(job["weights"]))
        bake_weight_quanters(model)
    else:
        load_weights(model, job["weights"])
    model.eval()
    if job.get("add_softmax"):
        from ...deploy.export import _Softmax

        model = _Softmax(model)
    return model


def _ptq(job, paddle, model, out):
    from paddle.static import InputSpec
    from paddle.static.quantization import PostTrainingQuantization

    batches = np.load(job["calib"])
    spec = InputSpec([job["batch_size"], *job["input_shape"]], "float32", "x")
    with tempfile.TemporaryDirectory() as tmp:
        with _traceable():
            paddle.jit.save(model, os.path.join(tmp, "inference"), input_spec=[spec])
        paddle.enable_static()
        exe = paddle.static.Executor(paddle.CPUPlace())
        skip = _unaligned_weights(paddle, exe, tmp, job["ops"]) if job.get("skip_unaligned") else {}
        step = job["calib_batch"]
        ptq = PostTrainingQuantization(
            exe, tmp, model_filename="inference.pdmodel", params_filename="inference.pdiparams",
            data_loader=lambda: ({"x": batches[i:i + step]} for i in range(0, len(batches), step)),
            batch_nums=job["calib_batches"], algo=job["algo"], hist_percent=job["hist_percent"],
            quantizable_op_type=job["ops"], weight_quantize_type=job["weight_quantize_type"], onnx_format=True,
            skip_tensor_list=sorted(skip) or None)
        ptq.quantize()
        ptq.save_quantized_model(out, model_filename="inference.pdmodel", params_filename="inference.pdiparams")
        thresholds = {k: float(v) for k, v in {**ptq._quantized_var_threshold, **ptq._quantized_threshold}.items()
                      if k in ptq._quantized_act_var_name and np.ndim(v) == 0}
    return thresholds, skip


ALIGN = 8


def _unaligned_weights(paddle, exe, folder, ops) -> dict:
    """Weights of quantizable ops whose output-channel count is not a multiple of 8, by
    name -> shape (``skip_unaligned``: an experiment, off by default). On a trained
    ShuffleNetV1 0.5x, oneDNN's int8 ``fc`` (Paddle 3.3.1) scaled classes 8 and 9 of the
    10-class classifier by ~0.73 while classes 0-7 matched Paddle's own simulation of the
    program; leaving such ops in float32 helps only partly (the oneDNN ``fc`` stays int8),
    so the cause is not settled."""
    program, _, _ = paddle.static.load_inference_model(os.path.join(folder, "inference"), exe)
    block, out = program.global_block(), {}
    for op in block.ops:
        if op.type not in ops:
            continue
        name = op.input("Filter")[0] if op.type.startswith(("conv", "depthwise")) else op.input("Y")[0]
        var = block.var(name)
        if not var.persistable:
            continue
        channels = var.shape[0] if op.type.startswith(("conv", "depthwise")) else var.shape[-1]
        if channels % ALIGN:
            out[name] = list(var.shape)
    return out


def _qat(job, paddle, model, out):
    from paddle.quantization import ImperativeQuantAware
    from paddle.static import InputSpec

    spec = InputSpec([job["batch_size"], *job["input_shape"]], "float32", "x")
    saver = ImperativeQuantAware(weight_quantize_type="channel_wise_abs_max",
                                 activation_quantize_type="moving_average_abs_max", onnx_format=True)
    with _traceable():
        saver.save_quantized_model(model, os.path.join(out, "inference"), input_spec=[spec])
    return {}, {}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m ppzoo.compress.quant.legacy JOB.json")
    with open(argv[0], encoding="utf-8") as f:
        job = json.load(f)
    paddle = _require_legacy()
    paddle.set_device("cpu")
    out = job["out"]
    os.makedirs(out, exist_ok=True)
    model = _build(job, paddle)
    thresholds, skipped = (_qat if job["mode"] == "qat" else _ptq)(job, paddle, model, out)
    info = {"mode": job["mode"], "activation_thresholds": thresholds, "float32_unaligned_weights": skipped}
    with open(os.path.join(out, "quant_info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
