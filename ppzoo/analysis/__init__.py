"""What a model costs: parameters, MAdds, memory access cost, activations and latency."""
from .latency import measure_latency
from .profile import (LayerStats, ModelStats, cost_rule, count_madds, count_params, paddle_flops, profile_model,
                      register_cost, summarize_by_kind)
from .report import analyze, format_report, resolve_models
from ..utils.timing import Timing, time_fn, time_interleaved

__all__ = ["LayerStats", "ModelStats", "register_cost", "cost_rule", "count_madds", "count_params", "paddle_flops",
           "profile_model", "summarize_by_kind", "measure_latency", "analyze", "format_report", "resolve_models", "Timing", "time_fn",
           "time_interleaved"]
