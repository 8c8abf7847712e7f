"""``Slim.distill``: the chain's teacher (``tools/compress.py``).

The first stage of a recipe. It names a teacher, and every later stage's fine-tune
(pruning's, low-rank's, QAT's) trains the compressed model against it as well as against
the labels: the usual way to win back what compression costs. The teacher is by default
the model being compressed itself (``teacher: self``: the uncompressed model teaches its
pruned and quantized forms), or any registered model with its weights::

    Slim:
      distill:
        teacher: self             # or a model name / {name, options}, with teacher_weights: PATH
        loss: kd                  # kd | dkd | ce | feature (the Distill section's losses)
        temperature: 4.0
        weight: 1.0
        epochs: 0                 # > 0: first train the incoming model this many epochs with the teacher

The settings are those of the ``Distill`` section (``spec.DISTILL``), which this stage
hands to the fine-tunes after it (``StageResult.fine_tune_sections``); its folder's
``stage.json`` keeps them, so a resumed chain distills the same way.
"""
import copy
from typing import Optional

from ...config import ConfigError, check_keys
from ..base import StageResult, register_stage
from .spec import DISTILL, check_distill_section

__all__ = ["check_distill_stage", "run_distill_stage", "STAGE_SPEC"]

STAGE_SPEC = {**DISTILL, "teacher": (object, "self"), "epochs": (int, 0)}
W = "Slim.distill"


def _section(p: dict, cfg: dict, weights: Optional[str]) -> dict:
    """The raw ``Distill`` section the stage stands for (``self`` resolved to the chain's input)."""
    section = {k: p[k] for k in DISTILL}
    if p["teacher"] == "self":
        arch = {k: v for k, v in cfg["Arch"].items() if k not in ("class_num", "infer_add_softmax", "pretrained")}
        section.update(teacher=arch, teacher_weights=weights)
    return section


def _resolve(section: dict, cfg: dict) -> dict:
    base = {k: v for k, v in cfg.items() if k not in ("Slim", "Distill")}
    try:
        return check_distill_section(section, base)
    except ConfigError as e:
        raise ConfigError(str(e).replace("'Distill", f"'{W}"), key=W + (e.key[len("Distill"):] if e.key else "")) \
            from None


def check_distill_stage(value, resolved: dict) -> dict:
    p = check_keys(value or {}, STAGE_SPEC, W)
    if p["epochs"] < 0:
        raise ConfigError(f"'{W}.epochs' must be >= 0, got {p['epochs']}", key=f"{W}.epochs")
    if p["teacher"] == "self" and p["teacher_weights"] is not None:
        raise ConfigError(f"'{W}.teacher_weights' is for a named teacher; 'teacher: self' is the model being "
                          "compressed (Global.pretrained_model)", key=f"{W}.teacher_weights")
    if resolved.get("Distill"):
        raise ConfigError(f"'{W}' and the 'Distill' section both name a teacher; keep {W} in a recipe", key=W)
    # every check of the Distill section, now (the weights path is read only when training starts)
    _resolve(_section(p, resolved, "Global.pretrained_model"), resolved)
    return p


def run_distill_stage(model, ctx) -> StageResult:
    p = ctx.params
    section = _resolve(_section(p, ctx.cfg, ctx.cfg["Global"]["pretrained_model"]), ctx.cfg)
    sections = {"Distill": section}
    teacher = section["teacher"]
    ctx.logger.info(f"distill: the fine-tunes of the later stages learn from {teacher['name']} "
                    f"({teacher.get('pretrained')}), loss {p['loss']}, temperature {p['temperature']}")
    if p["epochs"]:
        model = ctx.fine_tune(model, p["epochs"], sections=copy.deepcopy(sections))
    return StageResult(model, fine_tune_sections=sections,
                       info={"teacher": teacher["name"], "teacher_weights": teacher.get("pretrained"),
                             "loss": p["loss"], "temperature": p["temperature"], "epochs": p["epochs"]})


register_stage("distill", check_distill_stage, order=10, run=run_distill_stage,
               doc="a teacher for the fine-tunes of the later stages (ppzoo.compress.distill)")
