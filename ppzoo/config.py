"""YAML configs in PaddleClas's schema, checked before anything runs.

``load_config(path, overrides)`` reads a file (with ``_base_: [files]`` inheritance and a
deep merge), applies ``-o Key.sub.0.key=value`` overrides, checks every key and type,
fills defaults and returns a plain nested dict. Compared with PaddleClas:

* override values are parsed as YAML with a safe loader (never ``eval``; ``1e-3`` is a float)
  and may contain ``=``;
* an unknown key, in the file or in ``-o``, is an error with a did-you-mean, not a new field;
* a wrong type names the key and the expected type;
* component names (models, datasets, transforms, optimizers, schedules, losses) and their
  parameters are checked against the code that will receive them.
"""
import copy
import difflib
import inspect
import os
import re
import typing
from typing import Any, Dict, List, Optional, Sequence, Union

import yaml

__all__ = ["ConfigError", "load_config", "parse_override", "dump_config", "check_params", "check_type"]


class ConfigError(ValueError):
    """A config file, key or value is wrong; the message says where and what is valid."""


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
REGULARIZER = {"name": (str, "L2"), "coeff": (float, 0.0)}
SAMPLER = {"name": (str, "DistributedBatchSampler"), "batch_size": (int, 64), "drop_last": (bool, False),
           "shuffle": (bool, False)}
LOADER = {"num_workers": (int, 0), "use_shared_memory": (bool, True)}
OPTIMIZER_EXTRA = {  # keys of Optimizer besides the optimizer's own parameters
    "clip_norm": (Optional[float], None),  # global gradient-norm clipping
    "no_weight_decay": (List[str], []),  # any of: norm, depthwise, bias
    "base_batch_size": (Optional[int], None),  # scale every LR by global_batch / base_batch_size
}
POSTPROCESS = {"name": (str, "Topk"), "topk": (int, 5), "class_id_map_file": (Optional[str], None)}
INFER = {"infer_imgs": (Optional[str], None), "batch_size": (int, 1)}
SECTIONS = ("Global", "Arch", "Loss", "Optimizer", "DataLoader", "Metric", "AMP", "EMA", "Infer")
REQUIRED = ("Arch",)
NO_WEIGHT_DECAY = ("norm", "depthwise", "bias")


# ---------------------------------------------------------------------------- reading

class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _yaml(text):
    return yaml.load(text, Loader=_Loader)


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = _yaml(f)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise ConfigError(f"{where}: YAML syntax error: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML error: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def _merge(base: dict, top: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_with_bases(path: str, chain: Sequence[str] = ()) -> dict:
    if os.path.abspath(path) in map(os.path.abspath, chain):
        raise ConfigError(f"_base_ cycle: {' -> '.join(list(chain) + [path])}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file name or a list of file names, got {bases!r}")
    merged = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: _base_ file not found: {base} (looked for {base_path})")
        merged = _merge(merged, _load_with_bases(base_path, list(chain) + [path]))
    return _merge(merged, data)


# ---------------------------------------------------------------------------- overrides

def parse_override(text: str):
    """``"A.b.0.c=value"`` -> (["A", "b", "0", "c"], parsed value). Splits on the first
    ``=`` only; the value is YAML (``1e-3``, ``[1, 5]``, ``null``, ``true``, ``a=b``)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like Key.sub=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not key.strip() or any(not p for p in path):
        raise ConfigError(f"override '{text}': empty key part in '{key}'")
    try:
        value = _yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML: keep the text as a string
    return path, value


def _apply_override(cfg: dict, text: str) -> None:
    path, value = parse_override(text)
    node, walked = cfg, []
    for part in path[:-1]:
        walked.append(part)
        if isinstance(node, list):
            node = node[_list_index(node, part, walked, text)]
        elif isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(f"-o {text}: '{'.'.join(walked[:-1])}' is a {type(node).__name__}, "
                              f"it has no key '{part}'")
    last = path[-1]
    if isinstance(node, list):
        node[_list_index(node, last, path, text)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"-o {text}: '{'.'.join(path[:-1])}' is a {type(node).__name__}, it has no key '{last}'")


def _list_index(node: list, part: str, walked: List[str], text: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"-o {text}: '{'.'.join(walked)}' indexes a list of {len(node)} items; "
                          f"use 0..{len(node) - 1}")
    return int(part)


# ---------------------------------------------------------------------------- checking

def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is Union:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(hint))
    if origin in (list, List, Sequence, typing.get_origin(Sequence[int])):
        args = typing.get_args(hint)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin in (dict, Dict):
        return "mapping"
    return {int: "int", float: "number", bool: "bool", str: "string"}.get(hint, getattr(hint, "__name__", str(hint)))


def check_type(value, hint) -> bool:
    """Does ``value`` (from YAML) fit the type hint? ints are valid floats; bools are not ints."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin is Union:
        return any(check_type(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple, Sequence, typing.get_origin(Sequence[int])) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return all(check_type(v, args[0]) for v in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _unknown(key: str, allowed, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(allowed), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; valid keys: {', '.join(sorted(allowed))}"
    return ConfigError(f"unknown key '{where}.{key}'{hint}" if where else f"unknown section '{key}'{hint}")


def _check_keys(section: dict, spec: Dict[str, tuple], where: str, extra: Sequence[str] = ()) -> dict:
    """Check a fixed-key section against ``{key: (type, default)}`` and fill defaults."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"'{where}' must be a mapping, got {type(section).__name__}")
    out = {}
    for key, value in section.items():
        if not isinstance(key, str):
            raise ConfigError(f"'{where}' has a key that is not a name: {key!r}")
        if key in extra:
            out[key] = value
            continue
        if key not in spec:
            raise _unknown(key, list(spec) + list(extra), where)
        hint, _ = spec[key]
        if not check_type(value, hint):
            raise ConfigError(f"'{where}.{key}' must be {_type_name(hint)}, got {value!r}")
        out[key] = value
    for key, (_, default) in spec.items():
        out.setdefault(key, copy.deepcopy(default))
    return out


def _signature_params(fn) -> Dict[str, inspect.Parameter]:
    target = fn.__init__ if inspect.isclass(fn) else fn
    params = dict(inspect.signature(target).parameters)
    params.pop("self", None)
    return params


def check_params(fn, params: dict, where: str, skip: Sequence[str] = ()) -> None:
    """Check config parameters against the signature (and type hints) of ``fn``."""
    if params is None:
        return
    if not isinstance(params, dict):
        raise ConfigError(f"'{where}' must be a mapping of parameters, got {params!r}")
    sig = _signature_params(fn)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
    named = {k: p for k, p in sig.items() if p.kind not in (inspect.Parameter.VAR_KEYWORD,
                                                              inspect.Parameter.VAR_POSITIONAL)}
    try:
        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:  # unresolvable annotations: fall back to no type checks
        hints = {}
    for key, value in params.items():
        if key in skip:
            continue
        if key not in named:
            if takes_any:
                continue
            raise _unknown(key, [k for k in named if k not in skip], where)
        hint = hints.get(key)
        if hint is not None and not check_type(value, hint):
            raise ConfigError(f"'{where}.{key}' must be {_type_name(hint)}, got {value!r}")


def _check_named(entry, registry: Dict[str, Any], kind: str, where: str, skip: Sequence[str] = (),
                 build: bool = False):
    """A ``{Name: {params}}`` list entry, a bare ``Name``, or a ``{name: Name, ...}``
    mapping; returns (name, params). With ``build`` the component is also constructed, so
    that bad values fail here, with their location, rather than when the run starts."""
    if isinstance(entry, dict) and "name" in entry:
        name, params = entry["name"], {k: v for k, v in entry.items() if k != "name"}
        loc = where
    elif isinstance(entry, dict) and len(entry) == 1:
        name, params = next(iter(entry.items()))
        loc = f"{where}.{name}"
    elif isinstance(entry, str):
        name, params, loc = entry, {}, f"{where}.{entry}"
    else:
        raise ConfigError(f"'{where}' must be '- {kind}Name: {{params}}' or have a 'name' key, got {entry!r}")
    if not isinstance(name, str):
        raise ConfigError(f"'{where}': a {kind} name must be a string, got {name!r}")
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.4)
        hint = f"did you mean {' or '.join(close)}?" if close else f"valid: {', '.join(sorted(registry))}"
        raise ConfigError(f"unknown {kind} '{name}' at '{where}'; {hint}")
    params = params or {}
    check_params(registry[name], params, loc, skip)
    if build:
        try:
            registry[name](**{k: v for k, v in params.items() if k not in skip})
        except (ValueError, TypeError) as e:
            raise ConfigError(f"'{loc}': {e}") from None
    return name, params


def _check_list(value, registry, kind: str, where: str, build: bool = True) -> list:
    """A list of components -> the canonical ``[{Name: {params}}, ...]`` the builders read."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"'{where}' must be a list of '- {kind}Name: {{params}}' entries, got {value!r}")
    return [dict([_check_named(entry, registry, kind, f"{where}.{i}", build=build)]) for i, entry in enumerate(value)]


def _check_mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"'{where}' must be a mapping, got {type(value).__name__}: {value!r}")
    return value


def _check_arch(arch: dict, global_: dict) -> dict:
    from .registry import _model_entrypoints, resolve_name

    if not isinstance(arch, dict) or "name" not in arch:
        raise ConfigError("'Arch' needs a 'name', e.g. Arch: {name: shufflenet_v1_g3_x1_0}")
    try:
        key, _ = resolve_name(arch["name"])
    except ValueError as e:
        raise ConfigError(f"Arch.name: {e}") from None
    builder = _model_entrypoints[key]
    target = getattr(builder, "func", builder)  # functools.partial -> the model class
    fixed = set(getattr(builder, "keywords", {}) or {})
    if arch.get("pretrained") not in (None, False):
        raise ConfigError("Arch.pretrained: ppzoo never downloads weights; set Global.pretrained_model to a "
                          ".pdparams file (convert PaddleClas weights with tools/convert_weights.py)")
    model_params = {k: v for k, v in arch.items() if k not in ("name", "class_num", "pretrained",
                                                             "infer_add_softmax")}
    clash = sorted(set(model_params) & fixed)
    if clash:
        raise ConfigError(f"'Arch.{clash[0]}' is fixed by the model name ({clash[0]}="
                          f"{builder.keywords[clash[0]]!r}); choose another variant (ppzoo.list_models())")
    check_params(target, model_params, "Arch")
    for key, hint in (("class_num", Optional[int]), ("num_classes", Optional[int]), ("infer_add_softmax", bool)):
        if key in arch and not check_type(arch[key], hint):
            raise ConfigError(f"'Arch.{key}' must be {_type_name(hint)}, got {arch[key]!r}")
    out = dict(arch)
    given = {k: v for k, v in (("Arch.class_num", arch.get("class_num")), ("Arch.num_classes", arch.get("num_classes")),
                               ("Global.class_num", global_.get("class_num"))) if v is not None}
    if len(set(given.values())) > 1:
        raise ConfigError("the number of classes is given twice and differently: "
                          + ", ".join(f"{k}={v}" for k, v in given.items()) + "; keep one")
    classes = next(iter(given.values()), 1000)
    if classes < 1:
        raise ConfigError(f"the number of classes must be >= 1, got {classes}")
    out.pop("num_classes", None)
    out["class_num"] = classes
    out.setdefault("infer_add_softmax", False)
    return out


def _check_optimizer(opt: dict) -> dict:
    from .engine.builders import LR_SCHEDULES, OPTIMIZERS

    if not isinstance(opt, dict) or "name" not in opt:
        raise ConfigError("'Optimizer' needs a 'name', one of " + ", ".join(sorted(OPTIMIZERS)))
    extra = ("name", "lr", "regularizer") + tuple(OPTIMIZER_EXTRA)
    _check_named({k: v for k, v in opt.items() if k not in extra[1:]}, OPTIMIZERS, "optimizer", "Optimizer",
                 build=True)
    out = _check_keys({k: v for k, v in opt.items() if k in OPTIMIZER_EXTRA}, OPTIMIZER_EXTRA, "Optimizer")
    out.update({k: v for k, v in opt.items() if k not in OPTIMIZER_EXTRA})
    for item in out["no_weight_decay"]:
        if item not in NO_WEIGHT_DECAY:
            raise ConfigError(f"'Optimizer.no_weight_decay' entries must be among {', '.join(NO_WEIGHT_DECAY)}, "
                              f"got {item!r}")
    lr = opt.get("lr", {"name": "Constant", "learning_rate": 0.1})
    if not isinstance(lr, dict) or "name" not in lr:
        raise ConfigError("'Optimizer.lr' needs a 'name', one of " + ", ".join(sorted(LR_SCHEDULES)))
    _check_named(lr, LR_SCHEDULES, "LR schedule", "Optimizer.lr", build=True)
    out["lr"] = lr
    if opt["name"] == "AdamW" and opt.get("regularizer") is not None:
        raise ConfigError("'Optimizer.regularizer' cannot be used with AdamW, which decays weights itself "
                          "(Optimizer.weight_decay); set it to null")
    if opt.get("regularizer") is not None:
        reg = _check_keys(opt["regularizer"], REGULARIZER, "Optimizer.regularizer")
        if reg["name"] not in ("L1", "L2"):
            raise ConfigError(f"'Optimizer.regularizer.name' must be L1 or L2, got {reg['name']!r}")
        out["regularizer"] = reg
    if out.get("clip_norm") is not None and out["clip_norm"] <= 0:
        raise ConfigError(f"'Optimizer.clip_norm' must be > 0, got {out['clip_norm']}")
    return out


def _check_dataloader(dl: dict, mode: str, where: str) -> dict:
    from .data import BATCH_TRANSFORMS, DATASETS, TRANSFORMS

    if not isinstance(dl, dict):
        raise ConfigError(f"'{where}' must be a mapping with dataset, sampler and loader")
    for key in dl:
        if key not in ("dataset", "sampler", "loader"):
            raise _unknown(key, ("dataset", "sampler", "loader"), where)
    ds = dl.get("dataset")
    if not isinstance(ds, dict) or "name" not in ds:
        raise ConfigError(f"'{where}.dataset' needs a 'name', one of {', '.join(sorted(DATASETS))}")
    _check_named(ds, DATASETS, "dataset", f"{where}.dataset", skip=("transform_ops", "batch_transform_ops"))
    ds = dict(ds, transform_ops=_check_list(ds.get("transform_ops"), TRANSFORMS, "transform",
                                            f"{where}.dataset.transform_ops"))
    if ds.get("batch_transform_ops") is not None:
        ds["batch_transform_ops"] = _check_list(ds["batch_transform_ops"], BATCH_TRANSFORMS, "batch transform",
                                                f"{where}.dataset.batch_transform_ops")
    sampler = _check_keys(dl.get("sampler"), SAMPLER, f"{where}.sampler")
    if sampler["name"] not in ("DistributedBatchSampler", "BatchSampler"):
        raise ConfigError(f"'{where}.sampler.name' must be DistributedBatchSampler or BatchSampler, "
                          f"got {sampler['name']!r}")
    if sampler["batch_size"] < 1:
        raise ConfigError(f"'{where}.sampler.batch_size' must be >= 1, got {sampler['batch_size']}")
    loader = _check_keys(dl.get("loader"), LOADER, f"{where}.loader")
    return {"dataset": ds, "sampler": sampler, "loader": loader}


def _check_train_eval(section, registry, kind: str, where: str, default: dict) -> dict:
    section = _check_mapping(section, where) or default
    out = {}
    for key, value in section.items():
        if key not in ("Train", "Eval"):
            raise _unknown(key, ("Train", "Eval"), where)
        out[key] = _check_list(value, registry, kind, f"{where}.{key}")
    return out


def validate(cfg: dict) -> dict:
    """Check every section, fill defaults, return the resolved config with every component
    list in the canonical ``[{Name: {params}}]`` form."""
    from .data import TRANSFORMS
    from .engine.builders import LOSSES, METRICS

    for key in cfg:
        if key not in SECTIONS:
            raise _unknown(str(key), SECTIONS, "")
    for key in REQUIRED:
        if key not in cfg:
            raise ConfigError(f"section '{key}' is missing")
    out = {"Global": _check_keys(cfg.get("Global"), GLOBAL, "Global")}
    g = out["Global"]
    for key in ("epochs", "save_interval", "eval_interval", "print_batch_step"):
        if g[key] < 1:
            raise ConfigError(f"'Global.{key}' must be >= 1, got {g[key]}")
    if g["device"].split(":")[0] not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"'Global.device' must be auto, cpu, gpu or gpu:N, got {g['device']!r}")
    if g["to_static"]:
        raise ConfigError("'Global.to_static: true' is not supported for training; use tools/export.py to get "
                          "a static model")
    if len(g["image_shape"]) != 3 or min(g["image_shape"]) < 1:
        raise ConfigError(f"'Global.image_shape' must be [C, H, W] with positive sizes, got {g['image_shape']}")
    out["Arch"] = _check_arch(_check_mapping(cfg["Arch"], "Arch"), g)
    ce = [{"CELoss": {"weight": 1.0}}]
    out["Loss"] = _check_train_eval(cfg.get("Loss"), LOSSES, "loss", "Loss", {"Train": ce, "Eval": ce})
    top = [{"TopkAcc": {"topk": [1, 5]}}]
    out["Metric"] = _check_train_eval(cfg.get("Metric"), METRICS, "metric", "Metric", {"Train": top, "Eval": top})
    if "Optimizer" in cfg:
        out["Optimizer"] = _check_optimizer(_check_mapping(cfg["Optimizer"], "Optimizer"))
    if "DataLoader" in cfg:
        out["DataLoader"] = {}
        for key, value in _check_mapping(cfg["DataLoader"], "DataLoader").items():
            if key not in ("Train", "Eval"):
                raise _unknown(str(key), ("Train", "Eval"), "DataLoader")
            out["DataLoader"][key] = _check_dataloader(value, key, f"DataLoader.{key}")
    if "AMP" in cfg:
        out["AMP"] = _check_keys(cfg["AMP"], AMP, "AMP")
        if out["AMP"]["level"] not in ("O1", "O2"):
            raise ConfigError(f"'AMP.level' must be O1 or O2, got {out['AMP']['level']!r}")
    if "EMA" in cfg:
        out["EMA"] = _check_keys(cfg["EMA"], EMA, "EMA")
        if not 0.0 < out["EMA"]["decay"] < 1.0:
            raise ConfigError(f"'EMA.decay' must be in (0, 1), got {out['EMA']['decay']}")
    if "Infer" in cfg:
        infer = _check_mapping(cfg["Infer"], "Infer")
        out["Infer"] = _check_keys({k: v for k, v in infer.items() if k not in ("transforms", "PostProcess")},
                                   INFER, "Infer")
        out["Infer"]["transforms"] = _check_list(infer.get("transforms"), TRANSFORMS, "transform", "Infer.transforms")
        out["Infer"]["PostProcess"] = _check_keys(infer.get("PostProcess"), POSTPROCESS, "Infer.PostProcess")
    return out


# ---------------------------------------------------------------------------- public

def _blame(message: str, overrides: Sequence[str]) -> Optional[str]:
    """The last override whose key is, contains or lies under a key the message quotes."""
    quoted = re.findall(r"'([A-Za-z_][\w.]*)'", message)
    for text in reversed(list(overrides)):
        key = text.split("=", 1)[0].strip()
        if any(key == q or key.startswith(q + ".") or q.startswith(key + ".") for q in quoted):
            return text
    return None


def load_config(path: str, overrides: Sequence[str] = ()) -> dict:
    """Read, merge ``_base_`` files, apply ``-o`` overrides, validate and fill defaults.

    Raises:
        ConfigError: one line naming the file, key or value and what would be valid. An
        error about a key an override set says ``-o KEY=VALUE: ...``.
    """
    cfg = _load_with_bases(path)
    for text in overrides or ():
        _apply_override(cfg, text)
    try:
        return validate(cfg)
    except ConfigError as e:
        culprit = _blame(str(e), overrides or ())
        raise ConfigError(f"-o {culprit}: {e}" if culprit else f"{path}: {e}") from None


def dump_config(cfg: dict) -> str:
    """The resolved config as YAML (what ``--print-config`` shows)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, allow_unicode=True)
