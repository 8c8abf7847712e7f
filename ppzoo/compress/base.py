"""What every compression method plugs into.

Three kinds of plug, none of them a branch in the engine:

* **Slim stages** (``register_stage``): a key of the config's ``Slim`` section
  (``prune``, ``sparsity``, ``lowrank``, ``quant``, ``distill``, ``export``) with its checker and
  its place in the chain (``order``: a recipe must list its stages in that order).
* **Training methods** (``register_training_method``): ``fn(cfg, model, loss_fn)`` returns a
  :class:`TrainingParts` (a step function and/or hooks) when the config asks for the method,
  else ``None``; the trainer collects them with :func:`training_parts`.
* **Model passes** (``register_pass``): a post-training transform records what it changed
  (``record`` dict) so that the structure can be rebuilt later without data; the model is
  saved as ``prefix.pdparams`` + ``prefix.arch.json`` (:func:`save_compressed`), and
  ``ppzoo.create_model("prefix.arch.json")`` rebuilds it (:func:`load_arch`).
"""
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import paddle

from ..config import ConfigError, check_mapping, register_section
from ..registry import create_model, register_path_loader
from ..utils.fileio import write_together
from ..utils.hooks import ClassificationStep

__all__ = ["StageContext", "StageResult", "stage_runner", "register_stage", "stage_names", "register_training_method",
           "training_parts", "TrainingParts", "register_loss", "register_metric", "registered_losses",
           "registered_metrics",
           "register_pass", "arch_record", "add_pass", "save_compressed", "load_arch", "ARCH_SUFFIX"]

ARCH_SUFFIX = ".arch.json"
ARCH_FORMAT = "ppzoo.arch/1"


# ---------------------------------------------------------------------------- Slim stages

@dataclass
class StageContext:
    """What a stage's ``run`` gets besides the model.

    Attributes:
        cfg: the whole resolved config.
        key: the stage's ``Slim`` key; ``params``: its checked section.
        arch: the ``Arch`` section of the base model (``arch_record`` needs it for a model
            not compressed before).
        out_dir: the stage's own folder (``.../compress/<k>_<key>/``).
        logger: the run's logger.
        loader: ``loader(kind)`` with kind ``"train"``, ``"eval"`` or ``"calib"`` (training
            images with the eval transforms, unshuffled) -> a loader of (images, labels, skipped).
        fine_tune: ``fine_tune(model, epochs, sections=None) -> model``: the ordinary trainer
            on the config's data and optimizer, starting from the model's current weights,
            with the sections earlier stages handed on (and ``sections``) added to its config.
    """

    cfg: dict
    key: str
    params: dict
    arch: dict
    out_dir: str
    logger: object
    loader: Callable
    fine_tune: Callable


@dataclass
class StageResult:
    """What a stage's ``run`` returns.

    Attributes:
        model: the compressed model (dygraph), passed to the next stage; ``None`` keeps the
            incoming one (a stage that only exports).
        precision: the precision its deployed form runs in (``fp32``, ``bf16``, ``int8``).
        export: ``export(folder, input_shape)`` writes the deployable inference model (int8
            stages); ``None``: the runner exports ``model`` in float32.
        info: stage figures for the report (``file_bytes`` here overrides the size of the
            exported parameters, e.g. for bit-packed or PQ-coded weights).
        fine_tune_sections: resolved config sections every later stage's fine-tune adds
            (``Slim.distill``'s ``Distill``); kept in the stage's ``stage.json``.
    """

    model: Optional[object] = None
    precision: str = "fp32"
    export: Optional[Callable] = None
    info: dict = field(default_factory=dict)
    fine_tune_sections: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Stage:
    key: str
    check: Callable  # (section value, resolved config) -> resolved value
    order: int
    run: Optional[Callable]  # (model, StageContext) -> StageResult; None: a training-time method only
    doc: str


_STAGES: Dict[str, _Stage] = {}  # Slim key -> its checker, place in the chain and runner


def register_stage(key: str, check: Callable, order: int, run: Optional[Callable] = None, doc: str = "") -> None:
    """Declare ``Slim.<key>``: ``check(value, resolved) -> value`` raises ``ConfigError``;
    ``order`` is the stage's place in a recipe (lower runs first); ``run(model, ctx) ->
    StageResult`` is what ``tools/compress.py`` calls (``None`` for methods that only act
    during training, through ``register_training_method``)."""
    if key in _STAGES:
        raise ValueError(f"Slim stage '{key}' is already registered")
    _STAGES[key] = _Stage(key, check, order, run, doc)


def stage_runner(key: str) -> Optional[Callable]:
    """The ``run`` of ``Slim.<key>`` (``None`` when the stage acts only during training)."""
    return _STAGES[key].run


def stage_names() -> List[str]:
    """Registered ``Slim`` keys in the order a recipe runs them."""
    return [s.key for s in sorted(_STAGES.values(), key=lambda s: s.order)]


def _check_slim(section, resolved: dict) -> dict:
    from ..config import unknown_key

    section = check_mapping(section, "Slim")
    for key in section:
        if key not in _STAGES:
            raise unknown_key(str(key), stage_names(), "Slim")
    keys = list(section)
    wanted = sorted(keys, key=lambda k: _STAGES[k].order)
    if keys != wanted:
        raise ConfigError(f"'Slim' lists its stages as {', '.join(keys)}, an order that cannot work; write them as "
                          f"{', '.join(wanted)} (valid order: {' -> '.join(stage_names())})", key="Slim")
    return {key: _STAGES[key].check(value, resolved) for key, value in section.items()}


register_section("Slim", _check_slim, order=90)


# ---------------------------------------------------------------------------- training methods

@dataclass
class TrainingParts:
    """A training method's contribution: a step function replacing the plain one (at most
    one method may bring one), and hooks."""

    step_fn: Optional[Callable] = None
    hooks: List = field(default_factory=list)


_TRAINING_METHODS: List[Callable] = []  # fn(cfg, model, loss_fn) -> TrainingParts | None


def register_training_method(fn: Callable) -> Callable:
    """Add ``fn(cfg, model, loss_fn) -> TrainingParts | None``; usable as a decorator."""
    _TRAINING_METHODS.append(fn)
    return fn


def training_parts(cfg: dict, model, loss_fn: Callable) -> TrainingParts:
    """The step function and hooks every registered method asks for under ``cfg``
    (plain cross-entropy when none brings a step)."""
    step_fn, owner, hooks = None, None, []
    for method in _TRAINING_METHODS:
        parts = method(cfg, model, loss_fn)
        if parts is None:
            continue
        if parts.step_fn is not None:
            if step_fn is not None:
                raise ConfigError(f"two training methods each bring their own step ({owner} and "
                                  f"{method.__module__}); the config asks for both, keep one")
            step_fn, owner = parts.step_fn, method.__module__
        hooks.extend(parts.hooks)
    return TrainingParts(step_fn or ClassificationStep(loss_fn), hooks)


_LOSSES: Dict[str, Callable] = {}  # Loss.Train/Eval name -> factory, brought by training methods
_METRICS: Dict[str, Callable] = {}  # Metric name -> factory


def register_loss(name: str, factory: Callable) -> None:
    """Let ``Loss.Train`` name ``name`` (a training method's own loss, e.g. distillation's,
    which the method's step function calls); the factory's signature is the entry's spec."""
    if name in _LOSSES:
        raise ValueError(f"loss '{name}' is already registered")
    _LOSSES[name] = factory


def register_metric(name: str, factory: Callable) -> None:
    """Let ``Metric.Train/Eval`` name ``name``; a top-k metric has a ``topk`` parameter."""
    if name in _METRICS:
        raise ValueError(f"metric '{name}' is already registered")
    _METRICS[name] = factory


def registered_losses() -> Dict[str, Callable]:
    """Losses the training methods registered (the engine adds them to its own)."""
    return dict(_LOSSES)


def registered_metrics() -> Dict[str, Callable]:
    return dict(_METRICS)


# ---------------------------------------------------------------------------- model passes and arch files

_PASSES: Dict[str, Callable] = {}  # pass name -> rebuild(model, record) -> model (structure only)


def register_pass(name: str, rebuild: Callable) -> None:
    """Declare a model-to-model pass: ``rebuild(model, record)`` redoes its structural
    change on a freshly built model from the ``record`` it saved (no weights, no data)."""
    if name in _PASSES:
        raise ValueError(f"model pass '{name}' is already registered")
    _PASSES[name] = rebuild


def arch_record(model, arch: Optional[dict] = None) -> dict:
    """The architecture description of ``model``: its base model and the passes applied
    so far. A model never compressed needs ``arch`` (its config ``Arch`` section)."""
    record = getattr(model, "_ppzoo_arch", None)
    if record is not None:
        return json.loads(json.dumps(record))
    if arch is None:
        raise ValueError(f"{type(model).__name__} carries no architecture record; pass its Arch section")
    from ..registry import ARCH_KEYS

    kwargs = {k: v for k, v in arch.items() if k not in ARCH_KEYS}
    return {"format": ARCH_FORMAT, "base": {"name": arch["name"], "num_classes": arch["class_num"],
                                            "kwargs": kwargs}, "passes": []}


def add_pass(model, name: str, record: dict, arch: Optional[dict] = None):
    """Note on ``model`` that pass ``name`` changed it as ``record`` says (JSON-able)."""
    if name not in _PASSES:
        raise ValueError(f"unknown model pass '{name}'; registered: {', '.join(sorted(_PASSES))}")
    full = arch_record(model, arch)
    full["passes"].append({"pass": name, **json.loads(json.dumps(record))})
    model._ppzoo_arch = full
    return model


def save_compressed(model, prefix: str, arch: Optional[dict] = None) -> str:
    """Write ``prefix.pdparams`` and ``prefix.arch.json`` as one unit (both or neither, as
    the trainer's epoch files); returns the arch path."""
    record = arch_record(model, arch)
    path = prefix + ARCH_SUFFIX

    def write_arch(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    write_together([(prefix + ".pdparams", lambda tmp: paddle.save(model.state_dict(), tmp)), (path, write_arch)])
    return path


def load_arch(path: str, num_classes: Optional[int] = None, **kwargs):
    """Rebuild the model an ``.arch.json`` file describes (weights not loaded: they are in
    the ``.pdparams`` beside it). Returns ``None`` for paths of another kind."""
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.endswith(ARCH_SUFFIX))
        if len(found) != 1:
            return None
        path = os.path.join(path, found[0])
    if not path.endswith(ARCH_SUFFIX):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read architecture file {path}: {e}") from None
    if not isinstance(record, dict) or record.get("format") != ARCH_FORMAT or "base" not in record:
        raise ValueError(f"{path} is not a ppzoo architecture file (format {ARCH_FORMAT})")
    base = record["base"]
    if num_classes not in (None, 1000, base["num_classes"]):
        raise ValueError(f"{path} describes a {base['num_classes']}-class model; num_classes={num_classes} cannot "
                         "be rebuilt from it")
    model = create_model(base["name"], num_classes=base["num_classes"], **{**base["kwargs"], **kwargs})
    for entry in record.get("passes", []):
        name = entry.get("pass")
        if name not in _PASSES:
            raise ValueError(f"{path}: pass '{name}' is not known to this ppzoo (known: "
                             f"{', '.join(sorted(_PASSES)) or 'none'})")
        model = _PASSES[name](model, {k: v for k, v in entry.items() if k != "pass"})
    model._ppzoo_arch = record
    return model


register_path_loader(load_arch)
