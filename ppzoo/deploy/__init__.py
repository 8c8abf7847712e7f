"""Deployment: export to a Paddle inference model (+ ONNX) and the predictor that runs it.

``export`` writes ``inference.json``/``.pdiparams``/``inference.yml`` and checks the result;
``predictor`` loads such a folder with ``paddle.inference`` (``Predictor``), reads images and
measures accuracy. Below it: models, registry, data; above it: analysis, compress, engine.
"""
from .export import ExportError, export_from_config, export_model, read_metadata
from .predictor import Predictor
from . import spec  # noqa: F401,E402  (registers the Infer config section)

__all__ = ["ExportError", "export_model", "export_from_config", "read_metadata", "Predictor"]
