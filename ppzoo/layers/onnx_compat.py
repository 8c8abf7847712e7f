"""Trace-time switch for ops that paddle2onnx cannot convert correctly.

Inside :func:`onnx_compatible`, layers that use such an op trace a numerically identical
form built from basic ops instead:

* Paddle's fused ``channel_shuffle`` op has no paddle2onnx converter (ShuffleNet);
* paddle2onnx 2.1 writes the ``pad3d`` of ``LocalResponseNorm`` with a garbage pad value,
  so the ONNX model's LRN output varies from run to run (AlexNet).
"""
import contextlib

__all__ = ["onnx_compatible", "tracing_for_onnx"]

_state = {"onnx": False}


@contextlib.contextmanager
def onnx_compatible():
    """Trace ONNX-convertible forms of ``channel_shuffle`` and LRN inside this block."""
    previous, _state["onnx"] = _state["onnx"], True
    try:
        yield
    finally:
        _state["onnx"] = previous


def tracing_for_onnx() -> bool:
    """True inside :func:`onnx_compatible`."""
    return _state["onnx"]
