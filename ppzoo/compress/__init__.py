"""Model compression: each method is its own module and plugs in through ``base``.

Layout (one sub-package per method, as the methods land):

* ``base``: the ``Slim`` config section and its stage registry, training methods (a step
  function and/or hooks for ``tools/train.py``), model passes and ``.arch.json`` files;
* ``distill/``: teacher-student training (``Arch.name: DistillationModel``), a step function;
* ``prune/``: structured pruning after training (a model pass) and sparsity during
  training (hooks);
* ``quant/``: int8 post-training and quantization-aware training, bf16, binary layers;
* ``lowrank/``: SVD, Tucker-2, CP and product quantization of weights (model passes);
* ``recipe``: the chain of stages ``tools/compress.py`` runs.

This package sits above ``analysis`` (it measures what it compresses) and below
``engine`` (the trainer asks it for ``training_parts``).
"""
from .base import (ARCH_SUFFIX, StageContext, StageResult, TrainingParts, add_pass, arch_record, load_arch,
                   register_loss, register_metric, register_pass, register_stage, register_training_method,
                   registered_losses, registered_metrics, save_compressed, stage_names, stage_runner, training_parts)

__all__ = ["ARCH_SUFFIX", "StageContext", "StageResult", "TrainingParts", "add_pass", "arch_record", "load_arch",
           "register_loss", "register_metric", "register_pass", "register_stage", "register_training_method",
           "registered_losses", "registered_metrics", "save_compressed", "stage_names", "stage_runner",
           "training_parts"]
# each method registers its config keys, passes, losses and training methods on import
from . import distill  # noqa: E402,F401  (Arch: DistillationModel, the Distill section, its losses)
from . import prune  # noqa: E402,F401  (Slim.prune, Slim.sparsity, the prune pass)
from . import lowrank  # noqa: E402,F401  (Slim.lowrank, the lowrank pass)
from . import quant  # noqa: E402,F401  (Slim.quant, Slim.export, QAT and binary training)
