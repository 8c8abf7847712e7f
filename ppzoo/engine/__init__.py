"""Training and evaluation: builders, the loop, checkpoints, logging, and the trainer wiring them.

``train(cfg)`` = ``fit(build_run(cfg, session))``; the loop (``loop.train_one_epoch``) calls a
step function and hooks (``ppzoo.utils.hooks``: ``StepOutput``, ``Hook``, re-exported here).
"""
from ..utils.hooks import ClassificationStep, Hook, HookList, StepOutput
from . import spec  # noqa: F401  (registers Global, Loss, Metric, Optimizer, AMP, EMA)
from .trainer import Run, build_run, evaluate_config, fit, output_dir_of, train

__all__ = ["train", "build_run", "fit", "Run", "evaluate_config", "output_dir_of", "StepOutput", "Hook", "HookList",
           "ClassificationStep"]
