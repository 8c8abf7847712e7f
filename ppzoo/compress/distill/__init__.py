"""Knowledge distillation: a frozen teacher guides the training of a small student.

PaddleClas's ``Arch: {name: DistillationModel, models: [{Teacher: ...}, {Student: ...}],
freeze_params_list, infer_model_name}`` with its ``Distillation*`` losses and
``DistillationTopkAcc`` metric, or ppzoo's short ``Distill`` section; see
``docs/compression.md`` ("Distillation"). Modules:

* ``losses``: the losses and their closed forms (KD at temperature T, DML, DKD, FitNets);
* ``model``: :class:`DistillationModel`, the frozen teacher held outside the trained parameters;
* ``spec``: the config checks (Arch kind, ``Distill`` section, Loss/Metric cross-checks);
* ``method``: the Arch builder, the step function, the cost hook, the training method;
* ``stage``: ``Slim.distill``, the teacher of a compression chain's fine-tunes.
"""
from . import losses, model, spec, stage  # noqa: F401  (stage registers Slim.distill)
from .losses import (DISTILLATION_LOSSES, DistillationCELoss, DistillationDKDLoss, DistillationDMLLoss,
                     DistillationFeatureLoss, DistillationGTCELoss, DistillationKLDivLoss, dkd, dml_kl, kd_kl, soft_ce)
from .method import (DistillationHook, DistillationStep, DistillationTopkAcc, build_distillation,
                     distillation_method)
from .model import DistillationModel

__all__ = ["DISTILLATION_LOSSES", "DistillationCELoss", "DistillationDKDLoss", "DistillationDMLLoss",
           "DistillationFeatureLoss", "DistillationGTCELoss", "DistillationKLDivLoss", "DistillationHook",
           "DistillationModel", "DistillationStep", "DistillationTopkAcc", "build_distillation", "distillation_method",
           "dkd", "dml_kl", "kd_kl", "soft_ce"]
