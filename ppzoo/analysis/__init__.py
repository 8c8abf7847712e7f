"""Counting what a model costs: parameters, multiply-adds (and more, see ``profile``)."""
from .profile import LayerStats, ModelStats, count_madds, count_params, profile_model
from .timing import Timing, time_fn, time_interleaved

__all__ = ["LayerStats", "ModelStats", "count_madds", "count_params", "profile_model", "Timing", "time_fn",
           "time_interleaved"]
