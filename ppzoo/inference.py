"""Public alias of :mod:`ppzoo.deploy.predictor` (``ppzoo.inference.Predictor`` keeps working)."""
from ppzoo.deploy.predictor import Predictor, accuracy, collect_images  # noqa: F401
