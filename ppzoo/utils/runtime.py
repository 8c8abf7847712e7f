"""Device and CPU-thread selection shared by the tools and benchmarks."""
import os
import warnings
from typing import Optional

import paddle

__all__ = ["select_device", "set_cpu_threads", "cpu_threads"]

DEVICES = ("auto", "cpu", "gpu")


def select_device(device: str = "auto", logger=None) -> str:
    """Set Paddle's device: ``"gpu"`` (or ``"gpu:1"``), ``"cpu"``, or ``"auto"`` (GPU when
    this Paddle build has CUDA and sees a GPU, else CPU). Returns the device set.

    A config written for a GPU machine (PaddleClas's say ``device: gpu``) still runs where
    there is none: on CPU, with a notice through ``logger`` (or a warning) saying why.
    """
    kind = device.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or gpu:N), got {device!r}")
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if kind == "auto":
        device = "gpu" if has_gpu else "cpu"
    elif kind == "gpu" and not has_gpu:
        why = "no GPU is visible" if paddle.device.is_compiled_with_cuda() else "this Paddle build is CPU-only"
        notice = (f"device {device!r} requested but {why}: running on CPU (install ppzoo[gpu] on a CUDA machine "
                  "to use one)")
        if logger is not None:
            logger.info(notice)
        else:
            warnings.warn(notice)
        device = "cpu"
    paddle.set_device(device)
    return device


_threads = {"count": None}  # last count set here; Paddle itself starts from OMP_NUM_THREADS or 1


def set_cpu_threads(threads: Optional[int]) -> int:
    """Use ``threads`` CPU threads for Paddle's math kernels (``None`` or 0: leave as is).

    Paddle starts with ``OMP_NUM_THREADS`` or 1, whatever the machine has. The environment
    is left alone, so child processes (data loader workers, tools) do not inherit it.
    """
    if threads:
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        paddle.base.core.set_num_threads(int(threads))
        _threads["count"] = int(threads)
    return cpu_threads()


def cpu_threads() -> int:
    """Threads Paddle's CPU kernels use."""
    if _threads["count"]:
        return _threads["count"]
    value = os.environ.get("OMP_NUM_THREADS", "1")
    try:
        return int(value.split(",")[0])
    except ValueError:
        raise ValueError(f"OMP_NUM_THREADS must be a number of threads, got {value!r}") from None
