"""Distillation as a training method: the Arch kind, the step function and the cost hook.

``tools/train.py`` needs nothing special: the ``DistillationModel`` Arch kind builds the
teacher(s) and student(s) (``build_distillation``), :func:`distillation_method` (registered
with ``register_training_method``) gives the trainer a :class:`DistillationStep` and a
:class:`DistillationHook`, and the hook reports what the teacher costs. ``tools/eval.py``
and ``tools/export.py`` build ``Arch`` ``for_inference``: the ``infer_model_name`` model
alone, which takes the ``<name>.``-prefixed tensors of a distillation weight file.
"""
import logging
import os
from typing import Dict, List, Optional

import numpy as np
import paddle

from ...config import ConfigError
from ...registry import create_model, register_arch
from ...utils.hooks import Hook, StepOutput
from ...utils.weights import WeightsError, load_weights
from ..base import TrainingParts, register_loss, register_metric, register_training_method
from .losses import DISTILLATION_LOSSES
from .model import DistillationModel
from .spec import ARCH_NAME, STUDENT, TEACHER, arch_models, check_distillation_arch, distill_plan

__all__ = ["build_distillation", "build_entry", "DistillationStep", "DistillationHook", "DistillationTopkAcc",
           "distillation_method"]

MODEL_KWARGS_SKIP = ("name", "class_num", "infer_add_softmax", "pretrained")


def build_entry(entry: dict, where: str, load: bool = True, key: Optional[str] = None):
    """One checked teacher/student entry -> the model, with its ``pretrained`` weights
    (``key``: the config key named when they do not fit; default ``<where>.pretrained``)."""
    kwargs = {k: v for k, v in entry.items() if k not in MODEL_KWARGS_SKIP}
    model = create_model(entry["name"], num_classes=entry["class_num"], **kwargs)
    if load and entry.get("pretrained"):
        key = key or f"{where}.pretrained"
        path = entry["pretrained"]
        if not (os.path.isfile(path) or os.path.isfile(path + ".pdparams")):
            raise ConfigError(f"'{key}': weight file not found: {path} (expected a .pdparams file or its prefix)",
                              key=key)
        try:
            load_weights(model, entry["pretrained"])
        except WeightsError as e:
            raise ConfigError(f"'{key}' does not fit {entry['name']}: {e}", key=key) from None
    return model


def build_distillation(arch: dict, for_inference: bool = False):
    """The Arch kind's builder: every model (frozen ones with their weights) in a
    :class:`DistillationModel`; for inference the ``infer_model_name`` model alone."""
    models = arch_models(arch)
    names = list(models)
    if for_inference:
        name = arch["infer_model_name"]
        model = build_entry(models[name], f"Arch.models.{names.index(name)}.{name}", load=False)
        model.weights_prefix = f"{name}."  # load_weights takes these tensors from a distillation weight file
        model.registry_name = models[name]["name"]
        return model
    built = {name: build_entry(entry, f"Arch.models.{i}.{name}") for i, (name, entry) in enumerate(models.items())}
    frozen = [n for n, f in zip(names, arch["freeze_params_list"]) if f]
    return DistillationModel(built, frozen, arch["infer_model_name"])


register_arch(ARCH_NAME, check_distillation_arch, build_distillation)


class DistillationTopkAcc:
    """Top-k accuracy of the model ``model_key`` (PaddleClas's metric of distillation runs).

    Args:
        model_key (str): the model measured. Default: ``Arch.infer_model_name``.
        topk (list of int): the k; must include 1. Default [1, 5].
        feature_key: accepted for PaddleClas configs; must be null.
    """

    def __init__(self, model_key: Optional[str] = None, topk: List[int] = (1, 5), feature_key: Optional[str] = None):
        if not topk or any(not isinstance(k, int) or k < 1 for k in topk):
            raise ValueError(f"topk must be a list of positive ints, got {topk!r}")
        if 1 not in topk:
            raise ValueError(f"topk must include 1 (top-1 picks best_model and fills the logs), got {list(topk)}")
        if feature_key is not None:
            raise ValueError("feature_key: the accuracy is measured on logits; set it to null")
        self.model_key, self.topk = model_key, sorted(set(topk))


for _name, _cls in DISTILLATION_LOSSES.items():
    register_loss(_name, _cls)
register_metric("DistillationTopkAcc", DistillationTopkAcc)


class DistillationStep:
    """One batch: every model's forward (the frozen ones without gradients), the sum of the
    weighted loss terms (each also returned in ``extras`` for the log), and the logits of
    ``metric_key`` for the training accuracy.

    Args:
        losses (list): distillation losses (``ppzoo.compress.distill.losses``).
        metric_key (str): the model whose accuracy is logged.
        label_loss (callable, optional): ``label_loss(logits, targets)`` on ``label_model``'s
            logits (the short form: ``Loss.Train``). Default None.
        label_model (str): see ``label_loss``. Default ``Student``.
    """

    def __init__(self, losses: list, metric_key: str, label_loss=None, label_model: str = STUDENT):
        self.losses, self.metric_key = list(losses), metric_key
        self.label_loss, self.label_model = label_loss, label_model

    def __call__(self, model, images, targets) -> StepOutput:
        outputs = model(images)
        terms: Dict[str, paddle.Tensor] = {}
        if self.label_loss is not None:
            terms["loss_labels"] = self.label_loss(outputs[self.label_model]["logits"], targets)
        for loss in self.losses:
            terms.update(loss(outputs, targets))
        total = paddle.add_n(list(terms.values()))
        return StepOutput(total, outputs[self.metric_key]["logits"], {k: v.detach() for k, v in terms.items()})


def count_all(model) -> int:
    """Weights, trainable or frozen (a teacher's are frozen), as ``count_params`` counts a
    trainable model: batch-norm running statistics excluded."""
    return int(sum(int(np.prod(p.shape)) for n, p in model.named_parameters()
                   if n.rsplit(".", 1)[-1] not in ("_mean", "_variance")))


def _logger():
    return logging.getLogger("ppzoo")


class DistillationHook(Hook):
    """Sets the distillation model up before the optimizer is built (wraps the student in
    the short form, adds feature adapters, picks the evaluated model) and reports the
    teacher's cost: parameters at the start, and per epoch the seconds spent in the frozen
    models' forward passes and the img/s with and without them."""

    name = "distillation"

    def __init__(self, plan: dict, losses: list, image_shape, teacher: Optional[Dict[str, paddle.nn.Layer]] = None):
        self.plan, self.losses, self.image_shape = plan, losses, list(image_shape)
        self.teacher = teacher  # short form: {Teacher: model}, built (and its weights checked) by the method

    def prepare(self, model):
        plan = self.plan
        if plan["form"] == "short":
            model = DistillationModel({**self.teacher, STUDENT: model}, [TEACHER], STUDENT)
        model.eval_model_name = plan["eval_key"]
        model.feature_models = {n for loss in self.losses for n in getattr(loss, "feature_models", [])}
        if model.feature_models:
            self._add_adapters(model)
        log = _logger()
        parts = []
        for name in model.model_names:
            sub = model.model(name)
            state = "frozen, eval mode, no gradients" if name in model.frozen_names else "trained"
            weights = plan["models"][name].get("pretrained")
            parts.append(f"{name} = {plan['models'][name]['name']} ({count_all(sub) / 1e6:.3f} M params, {state}"
                         + (f", weights {weights}" if weights else "") + ")")
        adapters = count_all(model.adapters)
        log.info("distillation: " + "; ".join(parts) + (f"; adapters {adapters / 1e6:.4f} M params" if adapters else "")
                 + f" | losses: {', '.join(type(x).__name__ for x in self.losses)} | deployed model: {plan['infer']}")
        return model

    def _add_adapters(self, model: DistillationModel) -> None:
        """A 1x1 conv per feature-loss pair whose maps differ in width (found by one forward pass)."""
        x = paddle.zeros([2] + self.image_shape)
        widths = {}
        with paddle.no_grad():
            for name in model.feature_models:
                sub = model.model(name)
                was_training = sub.training
                sub.eval()
                widths[name] = sub.forward_features(x).shape[1]
                if was_training:
                    sub.train()
        for loss in self.losses:
            if not getattr(loss, "feature_models", None):
                continue
            for a, b in loss.model_name_pairs:
                if widths[a] != widths[b] and f"{a}__{b}" not in model.adapters:
                    model.add_adapter(a, b, widths[a], widths[b])

    def before_epoch(self, model, epoch: int) -> None:
        model.frozen_seconds = 0.0
        for loss in self.losses:  # per-epoch loss schedules (DKD's warm-up)
            if hasattr(loss, "set_epoch"):
                loss.set_epoch(epoch)

    def after_epoch(self, model, epoch: int, record: dict) -> None:
        train = record["train"]
        teacher_s = float(model.frozen_seconds)
        rest = max(train["seconds"] - teacher_s, 1e-9)
        train["teacher_seconds"] = teacher_s
        train["images_per_s_without_teacher"] = train["images"] / rest
        _logger().info(f"distillation cost, epoch {epoch}: teacher forward {teacher_s:.1f} s of {train['seconds']:.1f} s "
                       f"({100 * teacher_s / max(train['seconds'], 1e-9):.0f} %); {train['images_per_s']:.0f} img/s "
                       f"with the teacher's forward, {train['images_per_s_without_teacher']:.0f} img/s without it")


@register_training_method
def distillation_method(cfg: dict, model, loss_fn):
    """The step and hook of a distillation config (``Arch.name: DistillationModel`` or a
    ``Distill`` section), else ``None``."""
    plan = distill_plan(cfg)
    if plan is None:
        return None
    losses = [DISTILLATION_LOSSES[name](**params) for name, params in plan["losses"]]
    teacher = None
    if plan["form"] == "short":
        teacher = {TEACHER: build_entry(plan["models"][TEACHER], "Distill.teacher",
                                        key="Distill.teacher_weights" if cfg["Distill"].get("teacher_weights") else None)}
        label_loss = loss_fn
    else:
        label_loss = None
    step = DistillationStep(losses, plan["train_key"], label_loss=label_loss)
    return TrainingParts(step_fn=step, hooks=[DistillationHook(plan, losses, cfg["Global"]["image_shape"], teacher)])
