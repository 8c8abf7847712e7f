"""Pruning: channels removed after training (a model pass) and sparsity learned during
training (hooks). See docs/compression.md, section "Pruning"."""
from .criteria import CRITERIA, atom_scores
from .graph import ChannelGraph, UnmappedOperation, trace_channels
from .plan import analyze
from .pruner import PrunePlan, Pruner, apply_plan, make_inert, plan_madds, prune_model, rebuild_pruned

__all__ = ["CRITERIA", "atom_scores", "ChannelGraph", "UnmappedOperation", "trace_channels", "analyze", "PrunePlan",
           "Pruner", "apply_plan", "make_inert", "plan_madds", "prune_model", "rebuild_pruned"]
from . import spec  # noqa: E402,F401  (Slim.prune / Slim.sparsity checkers and training methods)
