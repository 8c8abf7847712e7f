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

    from .onednn_issues import unsafe_conv_weights

    batches = np.load(job["calib"])
    spec = InputSpec([job["batch_size"], *job["input_shape"]], "float32", "x")
    with tempfile.TemporaryDirectory() as tmp:
        with _traceable():
            paddle.jit.save(model, os.path.join(tmp, "inference"), input_spec=[spec])
        paddle.enable_static()
        exe = paddle.static.Executor(paddle.CPUPlace())
        program, _, _ = paddle.static.load_inference_model(os.path.join(tmp, "inference"), exe)
        skip = unsafe_conv_weights(program.global_block())  # onednn_issues, rule 1: stay float32
        step = job["calib_batch"]
        ptq = PostTrainingQuantization(
            exe, tmp, model_filename="inference.pdmodel", params_filename="inference.pdiparams",
            data_loader=lambda: ({"x": batches[i:i + step]} for i in range(0, len(batches), step)),
            batch_nums=job["calib_batches"], algo=job["algo"], hist_percent=job["hist_percent"],
            quantizable_op_type=job["ops"], weight_quantize_type=job["weight_quantize_type"], onnx_format=True,
            skip_tensor_list=skip or None)
        ptq.quantize()
        ptq.save_quantized_model(out, model_filename="inference.pdmodel", params_filename="inference.pdiparams")
        thresholds = {k: float(v) for k, v in {**ptq._quantized_var_threshold, **ptq._quantized_threshold}.items()
                      if k in ptq._quantized_act_var_name and np.ndim(v) == 0}
    return thresholds, skip


def _padded_avg_pools(paddle, folder) -> list:
    """The padded average pools of the int8 program in ``folder`` (onednn_issues, rule 2)."""
    from .onednn_issues import padded_avg_pools

    if paddle.in_dynamic_mode():  # the QAT export saved from dygraph
        paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    program, _, _ = paddle.static.load_inference_model(os.path.join(folder, "inference"), exe)
    return padded_avg_pools(program.global_block().ops)


def _qat(job, paddle, model, out):
    from paddle.quantization import ImperativeQuantAware
    from paddle.static import InputSpec

    spec = InputSpec([job["batch_size"], *job["input_shape"]], "float32", "x")
    saver = ImperativeQuantAware(weight_quantize_type="channel_wise_abs_max",
                                 activation_quantize_type="moving_average_abs_max", onnx_format=True)
    with _traceable():
        saver.save_quantized_model(model, os.path.join(out, "inference"), input_spec=[spec])
    return {}, []  # wrap_for_qat left rule 1's convolutions unquantized


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
    info = {"mode": job["mode"], "activation_thresholds": thresholds, "float32_conv_weights": skipped,
            "padded_avg_pools": _padded_avg_pools(paddle, out)}
    with open(os.path.join(out, "quant_info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
