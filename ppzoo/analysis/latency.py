"""Measured latency of a model: dygraph and the exported Paddle Inference program."""
import os
import tempfile
from typing import Callable, Optional, Sequence

import numpy as np
import paddle

from ..utils.runtime import cpu_threads, set_cpu_threads
from ..utils.timing import time_interleaved

__all__ = ["measure_latency"]


def measure_latency(model: paddle.nn.Layer, input_size: Sequence[int], batch_size: int = 1,
                    threads: Optional[int] = None, warmup: int = 5, repeat: int = 20, onednn: bool = True,
                    precision: str = "fp32", int8_export: Optional[Callable] = None) -> dict:
    """Median (p50) and p90 milliseconds per batch for dygraph eval (``paddle.no_grad``) and
    for the model exported to a temporary folder and run by ``paddle.inference``, timed
    interleaved on the same random batch after ``warmup`` rounds. Both use ``threads``
    CPU threads (default: one per core). ``precision`` is the predictor's: "bf16" runs the
    float32 export with oneDNN bfloat16 kernels, "int8" needs ``int8_export(model, folder,
    input_size)`` writing an int8 folder (``ppzoo.compress.quant``; this layer sits below it)."""
    if precision not in ("fp32", "bf16", "int8"):
        raise ValueError(f"precision must be fp32, bf16 or int8, got {precision!r}")
    if precision == "int8" and int8_export is None:
        raise ValueError("int8 latency needs an int8 exporter (tools/analyze.py passes ppzoo.compress.quant's)")
    from ..deploy.export import export_model
    from ..deploy.predictor import Predictor

    threads = threads or os.cpu_count() or 1
    previous, was_training = cpu_threads(), model.training
    set_cpu_threads(threads)
    model.eval()
    batch = np.random.default_rng(0).standard_normal([batch_size, *input_size]).astype("float32")
    tensor = paddle.to_tensor(batch)
    try:
        with tempfile.TemporaryDirectory() as folder:
            try:
                if precision == "int8":
                    int8_export(model, folder, list(input_size))
                else:
                    export_model(model, folder, input_size, verify=False)
            except (ValueError, RuntimeError) as e:  # ExportError is a ValueError
                raise ValueError(f"latency needs the model exported, which failed: {e}") from None
            predictor = Predictor(folder, threads=threads, onednn=onednn, precision=precision)

            def dygraph():
                with paddle.no_grad():
                    model(tensor)

            timings = time_interleaved({"dygraph": dygraph, "predictor": lambda: predictor.run(batch)}, repeat, warmup)
    finally:
        set_cpu_threads(previous)
        if was_training:
            model.train()
    return {"batch_size": batch_size, "threads": threads, "warmup": warmup, "runs": repeat, "onednn": onednn,
            "precision": predictor.precision,
            "dygraph_p50_ms": timings["dygraph"].median * 1e3, "dygraph_p90_ms": timings["dygraph"].p90 * 1e3,
            "predictor_p50_ms": timings["predictor"].median * 1e3, "predictor_p90_ms": timings["predictor"].p90 * 1e3}
