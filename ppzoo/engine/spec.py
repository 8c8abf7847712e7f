"""The config sections the trainer owns: ``Global``, ``Loss``, ``Metric``, ``Optimizer``,
``AMP`` and ``EMA`` (each ``{key: (type, default)}`` or the signature of the factory that
receives it; see ``ppzoo.config``)."""
from typing import List, Optional

from ..compress import registered_losses, registered_metrics
from ..config import (ConfigError, check_keys, check_list, check_mapping, check_named, check_positive,
                      register_section, unknown_key)
from .builders import (ADAMW_EXTRA, LOSSES, LR_SCHEDULES, METRICS, NO_WEIGHT_DECAY, OPTIMIZER_EXTRA, OPTIMIZERS,
                       REGULARIZER, optimizer_conflict)

__all__ = ["GLOBAL", "AMP", "EMA"]

# key: (type, default)  -- every Global key PaddleClas's ImageNet configs use, plus ours
GLOBAL = {
    "checkpoints": (Optional[str], None),  # resume from this checkpoint (prefix or .pdckpt)
    "pretrained_model": (Optional[str], None),  # load weights only (prefix or .pdparams)
    "output_dir": (str, "./output/"),
    "device": (str, "auto"),  # auto | cpu | gpu | gpu:N
    "class_num": (Optional[int], None),  # PaddleClas puts it here or in Arch
    "save_interval": (int, 1),
    "eval_during_train": (bool, True),
    "eval_interval": (int, 1),
    "epochs": (int, 10),
    "print_batch_step": (int, 10),
    "use_visualdl": (bool, False),
    "image_shape": (List[int], [3, 224, 224]),
    "save_inference_dir": (str, "./inference"),
    "to_static": (bool, False),
    "seed": (int, 0),
    "cpu_threads": (int, 0),  # 0: one per core
}
AMP = {"use_amp": (bool, True), "scale_loss": (float, 65536.0), "use_dynamic_loss_scaling": (bool, True),
       "level": (str, "O1"), "use_fp16_test": (bool, False), "use_promote": (bool, True)}
EMA = {"decay": (float, 0.9999)}


def check_global(section, resolved: dict) -> dict:
    g = check_keys(section, GLOBAL, "Global")
    check_positive(g, ("epochs", "save_interval", "eval_interval", "print_batch_step"), "Global")
    check_positive(g, ("seed", "cpu_threads"), "Global", minimum=0)
    if g["device"].split(":")[0] not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"'Global.device' must be auto, cpu, gpu or gpu:N, got {g['device']!r}", key="Global.device")
    if g["to_static"]:
        raise ConfigError("'Global.to_static: true' is not supported for training; use tools/export.py to get "
                          "a static model", key="Global.to_static")
    if len(g["image_shape"]) != 3 or min(g["image_shape"]) < 1:
        raise ConfigError(f"'Global.image_shape' must be [C, H, W] with positive sizes, got {g['image_shape']}",
                          key="Global.image_shape")
    return g


def _train_eval(section, registry, kind: str, where: str, default: list) -> dict:
    section = check_mapping(section, where) or {"Train": default, "Eval": default}
    out = {}
    for key, value in section.items():
        if key not in ("Train", "Eval"):
            raise unknown_key(key, ("Train", "Eval"), where)
        out[key] = check_list(value, registry, kind, f"{where}.{key}")
    return out


def check_loss(section, resolved: dict) -> dict:
    return _train_eval(section, {**LOSSES, **registered_losses()}, "loss", "Loss", [{"CELoss": {"weight": 1.0}}])


def check_metric(section, resolved: dict) -> dict:
    return _train_eval(section, {**METRICS, **registered_metrics()}, "metric", "Metric", [{"TopkAcc": {"topk": [1, 5]}}])


def check_optimizer(opt, resolved: dict) -> dict:
    opt = check_mapping(opt, "Optimizer")
    if "name" not in opt:
        raise ConfigError("'Optimizer' needs a 'name', one of " + ", ".join(sorted(OPTIMIZERS)), key="Optimizer")
    own_extra = ADAMW_EXTRA if opt["name"] == "AdamW" else {}
    outside = ("lr", "regularizer", *OPTIMIZER_EXTRA, *own_extra)
    check_named({k: v for k, v in opt.items() if k not in outside}, OPTIMIZERS, "optimizer", "Optimizer", build=True)
    spec = {**OPTIMIZER_EXTRA, **own_extra}
    out = check_keys({k: v for k, v in opt.items() if k in spec}, spec, "Optimizer")
    out.update({k: v for k, v in opt.items() if k not in spec})
    for item in out["no_weight_decay"]:
        if item not in NO_WEIGHT_DECAY:
            raise ConfigError(f"'Optimizer.no_weight_decay' entries must be among {', '.join(NO_WEIGHT_DECAY)}, "
                              f"got {item!r}", key="Optimizer.no_weight_decay")
    lr = opt.get("lr", {"name": "Constant", "learning_rate": 0.1})
    if not isinstance(lr, dict) or "name" not in lr:
        raise ConfigError("'Optimizer.lr' needs a 'name', one of " + ", ".join(sorted(LR_SCHEDULES)),
                          key="Optimizer.lr")
    check_named(lr, LR_SCHEDULES, "LR schedule", "Optimizer.lr", build=True)
    out["lr"] = lr
    conflict = optimizer_conflict(opt)
    if conflict:
        raise ConfigError(f"'Optimizer.regularizer' {conflict}", key="Optimizer.regularizer")
    if opt.get("regularizer") is not None:
        reg = check_keys(opt["regularizer"], REGULARIZER, "Optimizer.regularizer")
        if reg["name"] not in ("L1", "L2"):
            raise ConfigError(f"'Optimizer.regularizer.name' must be L1 or L2, got {reg['name']!r}",
                              key="Optimizer.regularizer.name")
        if reg["coeff"] < 0:
            raise ConfigError(f"'Optimizer.regularizer.coeff' must be >= 0, got {reg['coeff']}",
                              key="Optimizer.regularizer.coeff")
        out["regularizer"] = reg
    if out.get("clip_norm") is not None and out["clip_norm"] <= 0:
        raise ConfigError(f"'Optimizer.clip_norm' must be > 0, got {out['clip_norm']}", key="Optimizer.clip_norm")
    return out


def check_amp(section, resolved: dict) -> dict:
    amp = check_keys(section, AMP, "AMP")
    if amp["level"] not in ("O1", "O2"):
        raise ConfigError(f"'AMP.level' must be O1 or O2, got {amp['level']!r}", key="AMP.level")
    return amp


def check_ema(section, resolved: dict) -> dict:
    ema = check_keys(section, EMA, "EMA")
    if not 0.0 < ema["decay"] < 1.0:
        raise ConfigError(f"'EMA.decay' must be in (0, 1), got {ema['decay']}", key="EMA.decay")
    return ema


register_section("Global", check_global, order=0, always=True)
register_section("Loss", check_loss, order=20, always=True)
register_section("Metric", check_metric, order=30, always=True)
register_section("Optimizer", check_optimizer, order=40)
register_section("AMP", check_amp, order=60)
register_section("EMA", check_ema, order=70)
