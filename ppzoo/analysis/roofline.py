"""Distance to the limit: this machine's measured GEMM rate and memory bandwidth in the
exported predictor, a roofline bound per operator, and the predictor's own per-operator
time (Paddle's profiler) grouped next to the MAdds and MAC of the layers behind it.

Protocol (also in :data:`PROTOCOL`, printed by ``tools/analyze.py``):

* **peak**: one dense ``n x n @ n x n`` matmul (n = 2048, a ``Linear`` without bias, run as
  oneDNN's ``fc``) exported and run by ``paddle.inference`` with the same threads; 2 n^3
  FLOP over the median time of ``predictor.run()``. bfloat16 (``enable_onednn_bfloat16``)
  where the CPU supports it (``paddle.base.core.supports_bfloat16``).
* **bandwidth**: a chain of 8 oneDNN eltwise ops (relu and abs alternated, which no pass
  fuses) over NCHW float32 tensors of 2, 8, 32 and 128 MiB, 8 bytes per element and op
  (read + write) over the median: a curve, because on this machine it falls steeply with
  the working set. A layer's memory term uses the figure of the smallest working set (bytes
  one op moves) that holds its MAC bytes, the largest beyond 256 MiB.
* **one round-robin**: with :func:`deployed_figures`, the GEMM and bandwidth programs are
  timed in the same round-robin as the models, so that the machine's load (2 cores shared
  here) hits peak and models alike.
* **model latency**: median of ``predictor.run()`` with the batch already copied in (host
  copies excluded), all predictors of a call timed round-robin after warm-up.
* **bound** of a layer at batch B: max(2 B MAdds / peak, MAC bytes / bandwidth), with MAC
  at batch B (activations times B, weights once) and without the norm layers,
  activations and residual adds that the predictor folds into the preceding conv or FC
  (their tensors are never written); the model's bound is the sum. ``latency / bound``
  is the distance to the limit, ``bound / latency`` the fraction of it reached.
* **profile**: ``paddle.profiler`` (CPU) around ``steps`` predictor runs; each top-level
  operator event is one predictor op; times are summed per op type and divided by the
  steps; ``profiled_ms`` is the profiler's step time, so the per-type times sum to it
  minus what runs between operators (the executor and the profiler's own overhead).
"""
import contextlib
import gc
import os
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from .profile import DTYPE_BYTES, ModelStats
from ..utils.timing import time_interleaved

__all__ = ["PROTOCOL", "PredictorRunner", "machine_limits", "bandwidth_at", "bfloat16_supported", "roofline",
           "profile_predictor", "layer_groups", "deployed_figures"]

PROTOCOL = ("peak = median rate of one 2048^3 GEMM (Linear -> oneDNN fc) in paddle.inference, same threads; "
            "bandwidth = 8 chained oneDNN relu/abs over 2/8/32/128 MiB tensors, 8 B per element and op, the curve's "
            "point at a layer's MAC bytes; both timed in the same round-robin as the models; latency = median "
            "predictor.run() with the input already copied in, all predictors timed round-robin; layer bound = "
            "max(2 B MAdds / peak, MAC bytes at batch B / bandwidth), norms, activations and residual adds the "
            "predictor folds into a conv/FC not charged; model bound = sum over layers; profile = paddle.profiler "
            "top-level operator events per predictor op type, per run")

GEMM_SIZE = 2048
STREAM_MIB = (2, 8, 32, 128)


def bfloat16_supported() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (avx512_bf16 / AMX)."""
    return bool(paddle.base.core.supports_bfloat16())


class PredictorRunner:
    """An exported program behind ``paddle.inference`` (CPU, oneDNN) with the input fed
    once, so that :meth:`run` times the program alone.

    Args:
        folder (str): where ``inference.json`` / ``.pdiparams`` are (``paddle.jit.save``
            prefix ``inference``).
        threads (int): CPU math threads.
        precision (str): "float32" or "bfloat16" (oneDNN bfloat16 kernels). Default: "float32".
    """

    def __init__(self, folder: str, threads: int, precision: str = "float32"):
        import paddle.inference as paddle_infer

        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be float32 or bfloat16, got {precision!r}")
        if precision == "bfloat16" and not bfloat16_supported():
            raise ValueError("bfloat16 needs a CPU with avx512_bf16 or AMX; this one has neither")
        config = paddle_infer.Config(os.path.join(folder, "inference.json"), os.path.join(folder, "inference.pdiparams"))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(threads))
        config.enable_onednn()
        if precision == "bfloat16":
            config.enable_onednn_bfloat16()
        config.disable_glog_info()
        self.predictor = paddle_infer.create_predictor(config)
        self._input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.precision = precision

    def feed(self, batch: np.ndarray) -> "PredictorRunner":
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(np.ascontiguousarray(batch, dtype="float32"))
        return self

    def run(self) -> None:
        self.predictor.run()

    def output(self) -> np.ndarray:
        handle = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        return handle.copy_to_cpu()


def _save(layer: nn.Layer, folder: str, shape: Sequence[Optional[int]]) -> str:
    layer.eval()
    paddle.jit.save(layer, os.path.join(folder, "inference"),
                    input_spec=[paddle.static.InputSpec(list(shape), "float32", "x")])
    return folder


STREAM_OPS = 8


class _Stream(nn.Layer):
    """relu and abs alternated: oneDNN eltwise ops that no pass fuses, each reading and
    writing the whole tensor, intermediate buffers reused as in a model."""

    def forward(self, x):
        for _ in range(STREAM_OPS // 2):
            x = paddle.abs(nn.functional.relu(x))
        return x


def bandwidth_at(limits: dict, nbytes: float) -> float:
    """Measured bytes/s for a working set of ``nbytes`` (moved bytes): the point of the
    smallest measured working set that holds it, else the largest."""
    curve = sorted((int(k), v) for k, v in limits["bandwidth"].items())
    return next((v for size, v in curve if nbytes <= size), curve[-1][1])


def _limit_runners(tmp: str, threads: int, precisions: Sequence[str], gemm_size: int,
                   stream_mib: Sequence[int]) -> dict:
    rng = np.random.default_rng(0)
    paddle.seed(0)
    gemm = _save(nn.Linear(gemm_size, gemm_size, bias_attr=False), os.path.join(tmp, "gemm"), [gemm_size, gemm_size])
    stream = _save(_Stream(), os.path.join(tmp, "stream"), [None, 16, 32, 32])
    a = rng.standard_normal([gemm_size, gemm_size]).astype("float32")
    runners = {("gemm", p): PredictorRunner(gemm, threads, p).feed(a) for p in precisions}
    for mib in stream_mib:  # MiB per tensor
        runners[("stream", mib)] = PredictorRunner(stream, threads).feed(
            rng.standard_normal([mib * 16, 16, 32, 32]).astype("float32"))
    return runners


def _limits_from(timings: dict, threads: int, repeat: int, gemm_size: int) -> dict:
    flops = 2.0 * gemm_size ** 3
    return {"threads": int(threads), "gemm_size": gemm_size, "runs": repeat,
            "peak_flops": {k[1]: flops / t.median for k, t in timings.items() if k[0] == "gemm"},
            "bandwidth": {str(2 * k[1] * 2 ** 20): STREAM_OPS * 2.0 * k[1] * 2 ** 20 / t.median
                          for k, t in timings.items() if k[0] == "stream"}}


def machine_limits(threads: int, precisions: Sequence[str] = ("float32", "bfloat16"), repeat: int = 10,
                   warmup: int = 3, gemm_size: int = GEMM_SIZE, stream_mib: Sequence[int] = STREAM_MIB) -> dict:
    """Measured dense GEMM rate (FLOP/s) per precision and memory bandwidth (bytes/s, per
    working set in bytes moved) of this machine in ``paddle.inference`` (see
    :data:`PROTOCOL`). bfloat16 is skipped where the CPU lacks it."""
    precisions = [p for p in precisions if p != "bfloat16" or bfloat16_supported()]
    with tempfile.TemporaryDirectory() as tmp:
        runners = _limit_runners(tmp, threads, precisions, gemm_size, stream_mib)
        timings = time_interleaved({k: r.run for k, r in runners.items()}, repeat, warmup)
        del runners
    return _limits_from(timings, threads, repeat, gemm_size)


# --- which layers the predictor runs as which operators ---------------------------------------------------------

_COMPUTE = ("conv", "depthwise conv", "group conv", "fc")
# predictor op type (prefix "onednn_op." / "pd_op." and a trailing "_" removed) -> candidate groups, first one the
# model has wins; types without an entry are "other"
OP_GROUPS = {
    "fused_conv2d": ("conv",), "conv2d": ("conv",), "depthwise_conv2d": ("conv",), "fused_conv2d_add_act": ("conv",),
    "fc": ("fc",), "matmul": ("fc",), "fused_matmul": ("fc",),
    "pool2d": ("pooling",), "pool3d": ("lrn", "pooling"), "pad3d": ("lrn",), "pow": ("lrn",), "divide": ("lrn",),
    "sqrt": ("lrn",), "squeeze": ("lrn",), "scale": ("lrn",), "multiply": ("lrn",), "fused_elementwise_mul": ("lrn",),
    "channel_shuffle": ("shuffle",), "transpose": ("shuffle",), "reshape": ("shuffle", "lrn"),
    "concat": ("concat",), "add": ("add",), "elementwise_add": ("add",), "fused_elementwise_add": ("add",),
    "shuffle_channel": ("shuffle",), "relu": ("activation",), "relu6": ("activation",), "clip": ("activation",), "hardswish": ("activation",),
    "sigmoid": ("activation",), "onednn_to_paddle_layout": ("layout conversion",),
}


def _group_of_kind(kind: str) -> str:
    if kind.startswith(("conv", "depthwise conv", "group conv")):
        return "conv"
    return {"localresponsenorm": "lrn", "channelshuffle": "shuffle"}.get(kind, kind)


def layer_groups(stats: ModelStats) -> List[dict]:
    """Each layer of ``stats`` with the group of predictor operators it runs in and
    whether the predictor folds it into the preceding conv / FC: norms and activations
    right after a conv or FC, a residual add right after a conv's norm and the activation
    after that add (Paddle's conv-bn, conv-activation and conv-elementwise-add fuse passes)."""
    out, chain, last_shape = [], None, None
    for r in stats.layers:
        group = _group_of_kind(r.kind)
        fused = False
        if any(r.kind.startswith(c) for c in _COMPUTE):
            chain = group
        elif chain is not None and r.kind in ("norm", "activation", "add") and r.input_shape == last_shape:
            group, fused = chain, True
            if r.kind == "add" and chain != "conv":
                group, fused, chain = "add", False, None
        elif r.kind != "no-op":
            chain = None
        if r.kind != "no-op":
            last_shape = r.output_shape
        out.append({"name": r.name, "kind": r.kind, "group": group, "fused": fused})
    return out


def roofline(stats: ModelStats, limits: dict, batch_size: int, latency_ms: Optional[float] = None,
             precision: str = "float32") -> dict:
    """Per-layer and model bound (see :data:`PROTOCOL`) from batch-1 ``stats``, the
    measured ``limits`` and, when given, the measured latency of the whole batch."""
    peak = limits["peak_flops"][precision]
    size = DTYPE_BYTES[precision]
    layers, bound = [], 0.0
    for r, g in zip(stats.layers, layer_groups(stats)):
        flops = 2.0 * r.madds * batch_size
        if g["fused"]:  # its tensors are the conv's output, never written apart; a fused add reads its shortcut
            moved = batch_size * r.activations if r.kind == "add" else 0
        else:
            moved = r.mac_at(batch_size)
        compute_s, memory_s = flops / peak, moved * size / bandwidth_at(limits, moved * size)
        layer_bound = max(compute_s, memory_s)
        bound += layer_bound
        layers.append({"name": r.name, "kind": r.kind, "group": g["group"], "fused": g["fused"], "flops": flops,
                       "bytes": moved * size, "compute_ms": compute_s * 1e3, "memory_ms": memory_s * 1e3,
                       "bound_ms": layer_bound * 1e3, "limited_by": "compute" if compute_s >= memory_s else "memory"})
    total_flops = 2.0 * stats.madds * batch_size
    out = {"batch_size": batch_size, "precision": precision, "peak_gflops": peak / 1e9,
           "flops": total_flops, "bound_ms": bound * 1e3,
           "compute_bound_layers": sum(layer["limited_by"] == "compute" and layer["bound_ms"] > 0 for layer in layers),
           "memory_bound_layers": sum(layer["limited_by"] == "memory" and layer["bound_ms"] > 0 for layer in layers),
           "layers": layers}
    if latency_ms is not None:
        achieved = total_flops / (latency_ms / 1e3)
        out.update(latency_ms=latency_ms, achieved_gflops=achieved / 1e9, peak_share=achieved / peak,
                   latency_over_bound=latency_ms / out["bound_ms"], bound_share=out["bound_ms"] / latency_ms)
    return out


# --- the predictor's own per-operator time -----------------------------------------------------------------------

def _op_type(name: str) -> str:
    for prefix in ("onednn_op.", "pd_op.", "cinn_op.", "custom_op."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.rstrip("_") or name


def profile_predictor(run: Callable[[], None], steps: int = 10, warmup: int = 3) -> dict:
    """Per-op-type time of ``run()`` (one predictor run) under ``paddle.profiler``:
    ``{"steps", "profiled_ms", "ops_ms", "ops": [{"op", "calls", "ms", "share"}, ...]}``,
    per run, largest first. ``ops_ms`` (the sum over types) is at most ``profiled_ms``."""
    import paddle.profiler as profiler

    for _ in range(warmup):
        run()
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda p: None)
    prof.start()
    for _ in range(steps):
        run()
        prof.step()
    prof.stop()
    totals: Dict[str, List[float]] = {}
    step_ns, counted = 0, 0
    for root in prof.profiler_result.get_data().values():
        for step in root.children_node:
            if str(step.type) != "TracerEventType.ProfileStep" or counted >= steps:
                continue
            ops = [c for c in step.children_node if str(c.type) == "TracerEventType.Operator"]
            if not ops:
                continue
            counted += 1
            step_ns += step.end_ns - step.start_ns
            for op in ops:
                entry = totals.setdefault(_op_type(op.name), [0, 0.0])
                entry[0] += 1
                entry[1] += op.end_ns - op.start_ns
    del prof
    gc.collect()  # paddle allows one live profiler per process
    if not counted:
        raise RuntimeError("paddle.profiler recorded no operator of the predictor")
    profiled_ms = step_ns / counted / 1e6
    ops = [{"op": op, "calls": calls / counted, "ms": ns / counted / 1e6} for op, (calls, ns) in totals.items()]
    ops_ms = sum(o["ms"] for o in ops)
    for o in ops:
        o["share"] = o["ms"] / profiled_ms
    return {"steps": counted, "profiled_ms": profiled_ms, "ops_ms": ops_ms,
            "ops": sorted(ops, key=lambda o: -o["ms"])}


def _group_table(stats: ModelStats, profile: dict) -> List[dict]:
    """Predictor time per group of op types next to the MAdds and MAC shares of the layers
    that run as those ops (folded norms / activations / adds go with their conv)."""
    groups = layer_groups(stats)
    present = {g["group"] for g in groups}
    rows: Dict[str, dict] = {}

    def row(name):
        return rows.setdefault(name, {"group": name, "ops": [], "ms": 0.0, "madds": 0, "mac": 0, "layers": 0})

    for r, g in zip(stats.layers, groups):
        if r.kind == "no-op":
            continue
        entry = row(g["group"])
        entry["madds"] += r.madds
        entry["mac"] += r.mac
        entry["layers"] += 1
    for op in profile["ops"]:
        candidates = OP_GROUPS.get(op["op"], ())
        name = next((c for c in candidates if c in present or c == "layout conversion"), "other")
        entry = row(name)
        entry["ms"] += op["ms"]
        entry["ops"].append(f"{op['op']} x{op['calls']:g}")
    for entry in rows.values():
        entry["time_share"] = entry["ms"] / profile["profiled_ms"]
        entry["madds_share"] = entry["madds"] / stats.madds if stats.madds else 0.0
        entry["mac_share"] = entry["mac"] / stats.mac if stats.mac else 0.0
    return sorted(rows.values(), key=lambda e: -e["ms"])


def deployed_figures(models: Dict[str, tuple], batch_size: int, threads: int, limits: Optional[dict] = None,
                     precisions: Sequence[str] = ("float32", "bfloat16"), repeat: int = 20, warmup: int = 5,
                     profile: bool = True, profile_steps: int = 10) -> dict:
    """Export every ``name -> (model, input_size, stats[, export_context])``, time all
    predictors round-robin (fp32 and, where supported, bf16), then profile each fp32
    predictor. ``export_context`` (optional) is a context-manager factory active while
    that model is exported (``benchmarks/roofline.py`` exports the previous layer forms so).

    Returns ``{"limits", "protocol", "models": {name: {"latency_ms": {precision: ms},
    "roofline", "profile", "groups"}}}``. ``limits`` (from :func:`machine_limits`) is
    measured here when not given."""
    threads = int(threads or os.cpu_count() or 1)
    precisions = [p for p in precisions if p != "bfloat16" or bfloat16_supported()]
    from ..deploy.export import export_model

    out = {"protocol": PROTOCOL, "batch_size": batch_size, "threads": threads, "runs": repeat, "warmup": warmup,
           "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        runners = {} if limits else _limit_runners(tmp, threads, precisions, GEMM_SIZE, STREAM_MIB)
        for i, (name, (model, shape, *rest)) in enumerate(models.items()):
            folder = os.path.join(tmp, str(i))
            context = rest[1] if len(rest) > 1 else contextlib.nullcontext
            try:
                with context():
                    export_model(model, folder, shape, verify=False)
            except (ValueError, RuntimeError) as e:
                raise ValueError(f"{name}: the roofline and profile need the model exported, which failed: {e}") from None
            batch = np.random.default_rng(0).standard_normal([batch_size, *shape]).astype("float32")
            for p in precisions:
                runners[(name, p)] = PredictorRunner(folder, threads, p).feed(batch)
        timings = time_interleaved({k: r.run for k, r in runners.items()}, repeat, warmup)
        limits = limits or _limits_from(timings, threads, repeat, GEMM_SIZE)
        out["limits"] = limits
        for name, (model, shape, stats, *_) in models.items():
            latency = {p: timings[(name, p)].median * 1e3 for p in precisions}
            entry = {"latency_ms": latency, "latency_p90_ms": {p: timings[(name, p)].p90 * 1e3 for p in precisions},
                     "roofline": roofline(stats, limits, batch_size, latency["float32"])}
            if "bfloat16" in latency:
                entry["bf16_peak_share"] = (2.0 * stats.madds * batch_size / (latency["bfloat16"] / 1e3)
                                            / limits["peak_flops"]["bfloat16"])
            if profile:
                entry["profile"] = profile_predictor(runners[(name, "float32")].run, profile_steps)
                entry["groups"] = _group_table(stats, entry["profile"])
            out["models"][name] = entry
        del runners
    return out
