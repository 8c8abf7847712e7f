"""Device and CPU-thread selection shared by the tools and benchmarks."""
import os
from typing import Optional

import paddle

__all__ = ["select_device", "set_cpu_threads", "cpu_threads"]

DEVICES = ("auto", "cpu", "gpu")


def select_device(device: str = "auto") -> str:
    """Set Paddle's device: ``"gpu"`` (or ``"gpu:1"``), ``"cpu"``, or ``"auto"`` (GPU when
    this Paddle build has CUDA and sees a GPU, else CPU). Returns the device set.

    Asking for a GPU on a CPU-only build is an error naming the fix, not a silent fallback.
    """
    kind = device.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or gpu:N), got {device!r}")
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if kind == "auto":
        device = "gpu" if has_gpu else "cpu"
    elif kind == "gpu" and not has_gpu:
        raise ValueError(f"device {device!r} requested, but this Paddle build "
                         f"({'CUDA, no GPU visible' if paddle.device.is_compiled_with_cuda() else 'CPU-only'}) "
                         "cannot use one: install ppzoo[gpu] on a CUDA machine, or use device cpu")
    paddle.set_device(device)
    return device


def set_cpu_threads(threads: Optional[int]) -> int:
    """Use ``threads`` CPU threads for Paddle's math kernels (``None`` or 0: leave as is).

    Paddle starts with ``OMP_NUM_THREADS`` or 1, whatever the machine has.
    """
    if threads:
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        paddle.base.core.set_num_threads(int(threads))
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return cpu_threads()


def cpu_threads() -> int:
    """The thread count last set (Paddle reads ``OMP_NUM_THREADS`` at import)."""
    return int(os.environ.get("OMP_NUM_THREADS", "1"))
