"""How a config asks for distillation, and the checks that turn a mistake into one line.

Two spellings, one meaning:

* PaddleClas's: ``Arch: {name: DistillationModel, class_num, models: [{Teacher: {name,
  pretrained: PATH, ...}}, {Student: {name, ...}}], freeze_params_list: [True, False],
  infer_model_name: Student}`` with ``Loss.Train`` made of the ``Distillation*`` losses and
  ``Metric: DistillationTopkAcc: {model_key: Student}``;
* ppzoo's short form: ``Arch`` is the student as in any config, and a ``Distill`` section
  names the teacher and the method: ``Distill: {teacher: NAME | {name, ...}, teacher_weights:
  PATH, loss: kd | dkd | ce | feature, weight, temperature, alpha, beta, warmup_epochs}``; ``Loss.Train``
  stays the student's loss on the labels and the distillation term is added to it.

``pretrained`` of a model entry is the path of a ``.pdparams`` file (or its prefix):
ppzoo never downloads weights, so PaddleClas's ``pretrained: True`` is refused with the
way out. A frozen model (a teacher) must have weights; a trained one may start from them.
The files are read when training starts, so evaluating or exporting the student does not
need the teacher's file.
"""
from typing import Dict, List, Optional

from ...config import ConfigError, check_keys, check_mapping, register_section
from ...registry import check_model_arch, class_count, register_arch
from .losses import DISTILLATION_LOSSES

__all__ = ["ARCH_NAME", "check_distillation_arch", "check_distill_section", "distill_plan", "DISTILL", "SHORT_LOSSES"]

ARCH_NAME = "DistillationModel"
# Arch keys of a DistillationModel (PaddleClas's; use_sync_bn does nothing on one CPU process)
ARCH_SPEC = {"name": (str, ARCH_NAME), "class_num": (Optional[int], None), "models": (list, None),
             "freeze_params_list": (Optional[List[bool]], None), "pretrained_list": (Optional[list], None),
             "infer_model_name": (Optional[str], None), "infer_add_softmax": (bool, False),
             "use_sync_bn": (bool, False)}
# the short form: Distill section keys {key: (type, default)}
DISTILL = {"teacher": (object, None), "teacher_weights": (Optional[str], None), "loss": (str, "kd"),
           "weight": (float, 1.0), "temperature": (float, 4.0), "alpha": (float, 1.0), "beta": (float, 8.0),
           "warmup_epochs": (int, 0)}
SHORT_LOSSES = ("kd", "dkd", "ce", "feature")
TEACHER, STUDENT = "Teacher", "Student"


# ---------------------------------------------------------------------------- weights paths

def _weights_path(value, key: str, frozen: bool) -> Optional[str]:
    if value is True:
        raise ConfigError(f"'{key}: True' asks for a download, which ppzoo never does; give the path of a .pdparams "
                          "file (convert PaddleClas weights with tools/convert_weights.py)", key=key)
    if value in (None, False, ""):
        if frozen:
            raise ConfigError(f"'{key}' is missing: a frozen model (a teacher) needs trained weights; set it to a "
                              ".pdparams file (e.g. output/<model>/best_model.pdparams)", key=key)
        return None
    if not isinstance(value, str):
        raise ConfigError(f"'{key}' must be the path of a .pdparams file, got {value!r}", key=key)
    return value  # read when training starts (build_entry): eval/export of the student need no teacher file


def _model_entry(entry: dict, where: str, global_: dict, class_num: int, frozen: bool, small_input=None) -> dict:
    """Check one teacher/student entry; returns it with ``pretrained`` resolved."""
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"'{where}' needs a 'name', e.g. {{name: mobilenet_v1_x0_5}}", key=where)
    entry = dict(entry)
    pretrained = _weights_path(entry.pop("pretrained", None), f"{where}.pretrained", frozen)
    for key in ("use_ssld",):  # PaddleClas's switch between its downloadable weights; nothing to download here
        entry.pop(key, None)
    for key in ("class_num", "num_classes"):
        if entry.get(key) is not None and entry[key] != class_num:
            raise ConfigError(f"'{where}.{key}' is {entry[key]} but the other models predict {class_num} classes: "
                              "teacher and student must share one label set", key=f"{where}.{key}")
        entry.pop(key, None)
    if small_input is not None:
        entry.setdefault("small_input", small_input)
    out = check_model_arch({**entry, "class_num": class_num}, {}, where)
    out["pretrained"] = pretrained
    return out


# ---------------------------------------------------------------------------- Arch: DistillationModel

def check_distillation_arch(arch: dict, resolved: dict) -> dict:
    """Check PaddleClas's ``Arch: {name: DistillationModel, ...}``."""
    global_ = resolved.get("Global", {})
    a = check_keys(arch, ARCH_SPEC, "Arch")
    class_num = class_count(arch, global_, "Arch")
    models = a["models"]
    if not models:
        raise ConfigError("'Arch.models' must list the models, e.g. [{Teacher: {name: ..., pretrained: PATH}}, "
                          "{Student: {name: ...}}]", key="Arch.models")
    names = []
    for i, item in enumerate(models):
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"'Arch.models.{i}' must be one '{{Name: {{name: model, ...}}}}' entry, got {item!r}",
                              key=f"Arch.models.{i}")
        name = next(iter(item))
        if not isinstance(name, str) or name in names:
            raise ConfigError(f"'Arch.models.{i}': model name {name!r} is " +
                              ("used twice" if name in names else "not a string"), key=f"Arch.models.{i}")
        names.append(name)
    n = len(names)
    freeze = a["freeze_params_list"]
    if freeze is None:
        freeze = [False] * n
    if len(freeze) != n:
        raise ConfigError(f"'Arch.freeze_params_list' has {len(freeze)} entries but Arch.models has {n} "
                          f"({', '.join(names)}); give one True/False per model", key="Arch.freeze_params_list")
    if all(freeze):
        raise ConfigError("'Arch.freeze_params_list' freezes every model: nothing would be trained",
                          key="Arch.freeze_params_list")
    plist = a["pretrained_list"]
    if plist is not None and len(plist) != n:
        raise ConfigError(f"'Arch.pretrained_list' has {len(plist)} entries but Arch.models has {n}",
                          key="Arch.pretrained_list")
    checked = []
    for i, (name, frozen) in enumerate(zip(names, freeze)):
        entry = models[i][name]
        if plist is not None and plist[i] not in (None, False):
            if isinstance(entry, dict) and entry.get("pretrained") not in (None, False, plist[i]):
                raise ConfigError(f"'Arch.models.{i}.{name}.pretrained' and 'Arch.pretrained_list.{i}' disagree; "
                                  "keep one", key=f"Arch.pretrained_list.{i}")
            entry = {**entry, "pretrained": plist[i]}
        checked.append({name: _model_entry(entry, f"Arch.models.{i}.{name}", global_, class_num, frozen)})
    trained = [nm for nm, f in zip(names, freeze) if not f]
    infer = a["infer_model_name"] or trained[0]
    if infer not in names:
        raise ConfigError(f"'Arch.infer_model_name' is {infer!r}, which is not in Arch.models ({', '.join(names)})",
                          key="Arch.infer_model_name")
    if infer not in trained:
        raise ConfigError(f"'Arch.infer_model_name' names '{infer}', a frozen model; deploy a trained one "
                          f"({', '.join(trained)})", key="Arch.infer_model_name")
    return {"name": ARCH_NAME, "class_num": class_num, "models": checked, "freeze_params_list": list(freeze),
            "infer_model_name": infer, "infer_add_softmax": a["infer_add_softmax"]}


def arch_models(arch: dict) -> Dict[str, dict]:
    """``{name: entry}`` of a checked DistillationModel Arch, in order."""
    return {next(iter(item)): next(iter(item.values())) for item in arch["models"]}


# ---------------------------------------------------------------------------- Distill: the short form

def _check_short(section, resolved: dict) -> dict:
    d = check_keys(section, DISTILL, "Distill")
    arch, global_ = resolved["Arch"], resolved.get("Global", {})
    if arch["name"] == ARCH_NAME:
        raise ConfigError("'Distill' and 'Arch.name: DistillationModel' are two spellings of one thing; keep one",
                          key="Distill")
    if d["loss"] not in SHORT_LOSSES:
        raise ConfigError(f"'Distill.loss' must be one of {', '.join(SHORT_LOSSES)}, got {d['loss']!r} (for deep "
                          "mutual learning write Arch.name: DistillationModel with two students)", key="Distill.loss")
    for key in ("weight", "alpha", "beta"):
        if d[key] < 0:
            raise ConfigError(f"'Distill.{key}' must be >= 0, got {d[key]}", key=f"Distill.{key}")
    if d["temperature"] <= 0:
        raise ConfigError(f"'Distill.temperature' must be > 0 (it divides the logits), got {d['temperature']}",
                          key="Distill.temperature")
    if d["warmup_epochs"] < 0 or (d["warmup_epochs"] and d["loss"] != "dkd"):
        raise ConfigError(f"'Distill.warmup_epochs' is DKD's warm-up: an int >= 0 with loss: dkd, got "
                          f"{d['warmup_epochs']} with loss: {d['loss']}", key="Distill.warmup_epochs")
    teacher = d["teacher"]
    if teacher is None:
        raise ConfigError("'Distill.teacher' is missing: name the teacher model, e.g. teacher: mobilenet_v2_x0_5",
                          key="Distill.teacher")
    if isinstance(teacher, str):
        teacher = {"name": teacher}
    if not isinstance(teacher, dict):
        raise ConfigError(f"'Distill.teacher' must be a model name or {{name: ..., options}}, got {teacher!r}",
                          key="Distill.teacher")
    if d["teacher_weights"] is not None:
        if teacher.get("pretrained") not in (None, False, d["teacher_weights"]):
            raise ConfigError("'Distill.teacher_weights' and 'Distill.teacher.pretrained' disagree; keep one",
                              key="Distill.teacher_weights")
        teacher = {**teacher, "pretrained": d["teacher_weights"]}
    key = "Distill.teacher_weights" if "pretrained" not in (d["teacher"] if isinstance(d["teacher"], dict) else {}) \
        else "Distill.teacher.pretrained"
    try:
        d["teacher"] = _model_entry(teacher, "Distill.teacher", global_, arch["class_num"], True,
                                    small_input=arch.get("small_input"))
    except ConfigError as e:
        if e.key == "Distill.teacher.pretrained":
            raise ConfigError(str(e).replace("Distill.teacher.pretrained", key), key=key) from None
        raise
    d["teacher_weights"] = d["teacher"]["pretrained"]
    return d


# ---------------------------------------------------------------------------- cross-section checks

def _entries(section: dict, key: str):
    for i, entry in enumerate(section.get(key) or []):
        for name, params in entry.items():
            yield i, name, params or {}


def distill_plan(cfg: dict) -> Optional[dict]:
    """What the config's distillation consists of, or ``None``: ``{"form": "arch" | "short",
    "models": {name: entry}, "frozen": [names], "trained": [names], "infer": name, "losses":
    [(name, params)], "train_key": name, "eval_key": name}``."""
    arch = cfg["Arch"]
    if arch["name"] == ARCH_NAME:
        models = arch_models(arch)
        frozen = [n for n, f in zip(models, arch["freeze_params_list"]) if f]
        losses = [(name, params) for _, name, params in _entries(cfg["Loss"], "Train")]
        form = "arch"
    elif cfg.get("Distill"):
        d = cfg["Distill"]
        models = {TEACHER: d["teacher"], STUDENT: {k: v for k, v in arch.items()}}
        frozen = [TEACHER]
        losses = [_short_loss(d)]
        form = "short"
    else:
        return None
    trained = [n for n in models if n not in frozen]
    infer = arch.get("infer_model_name") or STUDENT

    def key_of(kind):
        for _, name, params in _entries(cfg["Metric"], kind):
            if name == "DistillationTopkAcc":
                return params.get("model_key") or infer
        return infer

    return {"form": form, "models": models, "frozen": frozen, "trained": trained, "infer": infer, "losses": losses,
            "train_key": key_of("Train"), "eval_key": key_of("Eval")}


def _short_loss(d: dict):
    pairs = [[STUDENT, TEACHER]]
    if d["loss"] == "kd":
        return "DistillationKLDivLoss", {"weight": d["weight"], "model_name_pairs": pairs,
                                         "temperature": d["temperature"]}
    if d["loss"] == "ce":
        return "DistillationCELoss", {"weight": d["weight"], "model_name_pairs": pairs,
                                      "temperature": d["temperature"]}
    if d["loss"] == "dkd":
        return "DistillationDKDLoss", {"weight": d["weight"], "model_name_pairs": pairs,
                                       "temperature": d["temperature"], "alpha": d["alpha"], "beta": d["beta"],
                                       "warmup_epochs": d["warmup_epochs"]}
    return "DistillationFeatureLoss", {"weight": d["weight"], "model_name_pairs": pairs}


def _models_of(name: str, params: dict) -> List[str]:
    loss = DISTILLATION_LOSSES[name](**params)
    return loss.models


def _check_long(resolved: dict) -> None:
    arch, loss, metric = resolved["Arch"], resolved["Loss"], resolved["Metric"]
    models = arch_models(arch)
    frozen = {n for n, f in zip(models, arch["freeze_params_list"]) if f}
    trained = [n for n in models if n not in frozen]
    listed = ", ".join(models)
    for i, name, params in _entries(loss, "Train"):
        where = f"Loss.Train.{i}.{name}"
        if name not in DISTILLATION_LOSSES:
            raise ConfigError(f"'{where}': in a DistillationModel run every training loss names its models; use "
                              f"DistillationGTCELoss: {{weight: 1.0, model_names: [{trained[0]}]}} for the labels",
                              key=where)
        field = "model_names" if name == "DistillationGTCELoss" else "model_name_pairs"
        for model in _models_of(name, params):
            if model not in models:
                raise ConfigError(f"'{where}.{field}' names '{model}', which is not in Arch.models ({listed})",
                                  key=f"{where}.{field}")
        if name == "DistillationDMLLoss":
            if len(trained) < 2:
                raise ConfigError(f"'{where}': deep mutual learning trains two models, but Arch.models has "
                                  f"{len(trained)} trained model ({', '.join(trained)}); add a second student "
                                  "(freeze_params_list: False)", key=f"{where}.model_name_pairs")
            for model in _models_of(name, params):
                if model in frozen:
                    raise ConfigError(f"'{where}.model_name_pairs' names '{model}', which Arch.freeze_params_list "
                                      "freezes; DML trains both models of a pair", key=f"{where}.model_name_pairs")
        elif name != "DistillationGTCELoss":
            for pair in params.get("model_name_pairs") or []:
                if pair[0] in frozen:
                    raise ConfigError(f"'{where}.model_name_pairs': '{pair[0]}' comes first in {list(pair)} but is "
                                      "frozen; write [learner, teacher]", key=f"{where}.model_name_pairs")
    if not loss.get("Train"):
        raise ConfigError("'Loss.Train' is empty: a DistillationModel run needs its losses (e.g. DistillationGTCELoss "
                          "and DistillationKLDivLoss)", key="Loss.Train")
    _check_eval_loss(loss)
    _check_metric(metric, models, frozen)


def _check_eval_loss(loss: dict) -> None:
    if not loss.get("Eval"):
        raise ConfigError("'Loss.Eval' is missing: evaluation measures one model (Arch.infer_model_name) with a "
                          "plain loss; add Loss.Eval: [{CELoss: {weight: 1.0}}]", key="Loss.Eval")
    for i, name, _ in _entries(loss, "Eval"):
        if name in DISTILLATION_LOSSES:
            raise ConfigError(f"'Loss.Eval.{i}.{name}': evaluation measures one model; use CELoss", key=f"Loss.Eval.{i}")


def _check_metric(metric: dict, models, frozen) -> None:
    for kind in ("Train", "Eval"):
        for i, name, params in _entries(metric, kind):
            key = params.get("model_key")
            if name == "DistillationTopkAcc" and key is not None and key not in models:
                raise ConfigError(f"'Metric.{kind}.{i}.DistillationTopkAcc.model_key' is '{key}', which is not in "
                                  f"Arch.models ({', '.join(models)})",
                                  key=f"Metric.{kind}.{i}.DistillationTopkAcc.model_key")


def check_distill_section(section, resolved: dict):
    """The ``Distill`` section (the short form) and the checks across Arch, Loss and Metric
    that a distillation run needs (run for every config; ``None`` when there is no
    distillation)."""
    arch, loss = resolved["Arch"], resolved["Loss"]
    if section is not None:
        section = check_mapping(section, "Distill")
        out = _check_short(section, resolved)
        for i, name, _ in _entries(loss, "Train"):
            if name in DISTILLATION_LOSSES:
                raise ConfigError(f"'Loss.Train.{i}.{name}': with the Distill section, Loss.Train is the student's "
                                  "loss on the labels and Distill.loss adds the distillation term; remove this entry",
                                  key=f"Loss.Train.{i}")
        _check_metric(resolved["Metric"], {TEACHER: 1, STUDENT: 1}, {TEACHER})
        return out
    if arch["name"] == ARCH_NAME:
        _check_long(resolved)
        return None
    for kind, sec, registry in (("Loss", loss, DISTILLATION_LOSSES), ("Metric", resolved["Metric"],
                                                                       ("DistillationTopkAcc",))):
        for part in ("Train", "Eval"):
            for i, name, _ in _entries(sec, part):
                if name in registry:
                    raise ConfigError(f"'{kind}.{part}.{i}.{name}' compares the models of a distillation run; set "
                                      "Arch.name: DistillationModel (teacher + student) or add a Distill section",
                                      key=f"{kind}.{part}.{i}")
    return None


register_section("Distill", check_distill_section, order=35, always=True)
