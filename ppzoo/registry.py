"""Model registry: one dict of builders, one dict of metadata, and the ``Arch`` section.

``register_model`` adds a builder, ``create_model`` builds one by name, ``list_models``
filters names with shell-style wildcards and ``model_info`` returns the published facts
(family, paper, input size, params, MAdds, top-1, mean/std, crop) recorded beside each
builder. Names may carry a tag as timm's do: ``mobilenet_v2_x1_0.paddleclas`` is its own
entry (PaddleClas's layout, with that layout's figures), and PaddleClas's arch names
(``MobileNetV2``) resolve to the tagged entry.

Higher layers plug in without this module importing them: ``register_arch`` adds an
``Arch.name`` that builds something other than one registered model (``DistillationModel``),
``register_path_loader`` lets ``create_model`` take a saved architecture file by path
(compressed models).
"""
import difflib
import fnmatch
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from .config import ConfigError, check_params, check_type, register_section, type_name

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info", "resolve_name",
           "model_entrypoint", "model_arguments", "register_arch", "register_path_loader", "build_from_arch",
           "check_model_arch", "ARCH_KEYS", "IMAGENET_MEAN", "IMAGENET_STD", "DEFAULT_CROP_PCT"]


IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the one place for ImageNet's normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875  # 224 / 256
ARCH_KEYS = ("name", "class_num", "infer_add_softmax", "pretrained")  # Arch keys that are not model kwargs


@dataclass(frozen=True)
class ModelInfo:
    """Facts about one registered variant.

    ``params`` and ``madds`` are the published figures in millions (trainable weights;
    multiply-adds of Conv2D and Linear layers at ``input_size``, batch 1), ``top1`` the
    published ImageNet top-1 accuracy in percent. ``None`` means nothing was published.
    """

    name: str
    family: str = ""
    paper: str = ""  # arXiv id, e.g. "1704.04861", or a URL for papers without one
    input_size: Tuple[int, int, int] = (3, 224, 224)
    params: Optional[float] = None
    madds: Optional[float] = None
    top1: Optional[float] = None
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = DEFAULT_CROP_PCT  # eval: resize the short side to size / crop_pct, centre-crop size
    paddleclas_names: Tuple[str, ...] = ()  # PaddleClas arch names that build exactly this entry
    notes: str = ""

    @property
    def paper_url(self) -> str:
        if not self.paper or "://" in self.paper:
            return self.paper
        return f"https://arxiv.org/abs/{self.paper}"


_model_entrypoints: Dict[str, Callable] = {}  # registry name -> builder(**kwargs) -> nn.Layer
_model_info: Dict[str, ModelInfo] = {}  # registry name -> published facts
_paddleclas_names: Dict[str, str] = {}  # lower-cased PaddleClas name -> registry name
_arch_kinds: Dict[str, "ArchKind"] = {}  # Arch.name -> a builder of something else than one model
_path_loaders: List[Callable] = []  # loader(path, **kwargs) -> model or None, for names that are files


def register_model(fn: Optional[Callable] = None, *, name: Optional[str] = None, **info):
    """Register a model builder under ``name`` (default: the function's name).

    Works as a bare decorator (``@register_model``), a decorator with metadata
    (``@register_model(family="mobilenet_v1", paper="1704.04861", params=4.24)``) or a
    plain call (``register_model(builder, name="my_net")``). Keyword arguments other than
    ``name`` become the variant's :class:`ModelInfo`. Registering a name twice is an error.
    """

    def _register(builder: Callable) -> Callable:
        key = name or builder.__name__
        if key in _model_entrypoints:
            raise ValueError(f"a model is already registered under the name '{key}'")
        meta = ModelInfo(name=key, **info)
        if key.split(".")[0] in _arch_kinds:
            raise ValueError(f"'{key}' is an Arch kind (register_arch), not a model name")
        for alias in meta.paddleclas_names:
            if alias.lower() in _paddleclas_names:
                raise ValueError(f"PaddleClas name '{alias}' already maps to '{_paddleclas_names[alias.lower()]}'")
        for alias in meta.paddleclas_names:
            _paddleclas_names[alias.lower()] = key
        _model_entrypoints[key] = builder
        _model_info[key] = meta
        return builder

    return _register(fn) if fn is not None else _register


def list_models(pattern: str = "*", exclude: Optional[str] = None) -> List[str]:
    """Registered names matching the shell-style ``pattern``, sorted."""
    names = [n for n in _model_entrypoints if fnmatch.fnmatchcase(n, pattern)]
    if exclude:
        names = [n for n in names if not fnmatch.fnmatchcase(n, exclude)]
    return sorted(names)


def resolve_name(name: str) -> str:
    """Map a registry name (with or without a tag) or a PaddleClas arch name to its
    registry name.

    PaddleClas names (``MobileNetV1_x0_5``, ``MobileNetV2``, ``AlexNet``) resolve to the
    entry with PaddleClas's layout (``mobilenet_v2_x1_0.paddleclas``), so PaddleClas weights
    load without conversion tricks. Raises ``ValueError`` listing the closest registered
    names when nothing matches.
    """
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {name!r}")
    if name in _model_entrypoints:
        return name
    if name.lower() in _paddleclas_names:
        return _paddleclas_names[name.lower()]
    if name.lower() in _model_entrypoints:
        return name.lower()
    candidates = list(_model_entrypoints) + [a for info in _model_info.values() for a in info.paddleclas_names]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5) or difflib.get_close_matches(
        name.lower(), list(_model_entrypoints), n=5, cutoff=0.3)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise ValueError(f"unknown model '{name}'{hint} (ppzoo.list_models() lists all {len(_model_entrypoints)})")


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered (or PaddleClas) model name."""
    return _model_info[resolve_name(name)]


def model_entrypoint(name: str) -> Callable:
    """The builder registered under ``name`` (a registry or PaddleClas name)."""
    return _model_entrypoints[resolve_name(name)]


def model_arguments(name: str) -> Tuple[Callable, Dict]:
    """``(callable whose signature lists the model's options, options fixed by the name)``:
    what a config may set for this model and what it may not."""
    builder = model_entrypoint(name)
    fixed = {}
    while hasattr(builder, "func") and hasattr(builder, "keywords"):  # functools.partial, possibly nested
        fixed = {**builder.keywords, **fixed}
        builder = builder.func
    return builder, fixed


def register_path_loader(loader: Callable) -> None:
    """Let ``create_model`` build from a file: ``loader(path, num_classes=..., **kwargs)``
    returns a model, or ``None`` when the path is not its kind (ppzoo.compress registers
    the loader of ``*.arch.json`` architecture files)."""
    _path_loaders.append(loader)


def _from_path(name: str, **kwargs):
    if not isinstance(name, str) or not (os.sep in name or name.endswith(".json")) or not os.path.exists(name):
        return None
    for loader in _path_loaders:
        model = loader(name, **kwargs)
        if model is not None:
            return model
    raise ValueError(f"{name} is a path, but no architecture loader reads it (expected an .arch.json file "
                     "written by tools/compress.py next to its weights)")


def create_model(name: str, num_classes: int = 1000, pretrained: Optional[str] = None, **kwargs):
    """Build a registered model.

    Args:
        name: registry name (``list_models()``), a PaddleClas arch name, or the path of an
            architecture file (``*.arch.json``, written beside compressed weights).
        num_classes: size of the classifier; 0 removes it (the model returns pooled
            features). PaddleClas's ``class_num`` is accepted as an alias.
        pretrained: path of a ``.pdparams`` file (ours, a ppzoo checkpoint, or converted
            with ``tools/convert_weights.py``). Shapes must match exactly.
        **kwargs: passed to the model class (``in_channels``, ``drop_rate``,
            ``small_input``, family options such as ``groups`` or ``layout``).
    """
    if "class_num" in kwargs:
        class_num = kwargs.pop("class_num")
        if num_classes not in (1000, class_num):
            raise ValueError(f"num_classes={num_classes} and class_num={class_num} disagree; pass one of them")
        num_classes = class_num
    model = _from_path(name, num_classes=num_classes, **kwargs)
    if model is None:
        model = _model_entrypoints[resolve_name(name)](num_classes=num_classes, **kwargs)
    if pretrained:
        from .utils.weights import load_weights

        load_weights(model, pretrained)
    return model


# ---------------------------------------------------------------------------- the Arch section

@dataclass(frozen=True)
class ArchKind:
    """An ``Arch.name`` that is not one model: ``check(arch, resolved) -> arch`` validates the
    section, ``build(arch, for_inference) -> nn.Layer`` builds what it describes (for
    inference: the one model to deploy, e.g. the distillation student)."""

    name: str
    check: Callable
    build: Callable


def register_arch(name: str, check: Callable, build: Callable) -> None:
    """Add an ``Arch.name`` kind (PaddleClas's ``DistillationModel``); see :class:`ArchKind`."""
    if name in _arch_kinds or name in _model_entrypoints:
        raise ValueError(f"Arch name '{name}' is already registered")
    _arch_kinds[name] = ArchKind(name, check, build)


def build_from_arch(arch: dict, for_inference: bool = False):
    """A checked ``Arch`` section -> the model it describes."""
    kind = _arch_kinds.get(arch["name"])
    if kind is not None:
        return kind.build(arch, for_inference)
    kwargs = {k: v for k, v in arch.items() if k not in ARCH_KEYS}
    return create_model(arch["name"], num_classes=arch["class_num"], **kwargs)


def class_count(arch: dict, global_: dict, where: str = "Arch") -> int:
    """The number of classes, given in ``Arch.class_num``, ``Arch.num_classes`` or
    ``Global.class_num`` (PaddleClas uses both places); differing values are an error."""
    for key, hint in (("class_num", Optional[int]), ("num_classes", Optional[int])):
        if key in arch and not check_type(arch[key], hint):
            raise ConfigError(f"'{where}.{key}' must be {type_name(hint)}, got {arch[key]!r}", key=f"{where}.{key}")
    given = {k: v for k, v in ((f"{where}.class_num", arch.get("class_num")),
                               (f"{where}.num_classes", arch.get("num_classes")),
                               ("Global.class_num", global_.get("class_num"))) if v is not None}
    if len(set(given.values())) > 1:
        raise ConfigError("the number of classes is given twice and differently: "
                          + ", ".join(f"{k}={v}" for k, v in given.items()) + "; keep one", key=f"{where}.class_num")
    classes = next(iter(given.values()), 1000)
    if classes < 1:
        raise ConfigError(f"the number of classes must be >= 1, got {classes}", key=f"{where}.class_num")
    return classes


def check_model_arch(arch: dict, global_: dict, where: str = "Arch") -> dict:
    """Check one model's section (``Arch``, or a teacher/student entry): the name, the
    options the model takes, the class count; returns it with ``class_num`` and
    ``infer_add_softmax`` filled."""
    if not isinstance(arch, dict) or "name" not in arch:
        raise ConfigError(f"'{where}' needs a 'name', e.g. {where}: {{name: shufflenet_v1_g3_x1_0}}", key=where)
    if arch.get("pretrained") not in (None, False):
        raise ConfigError(f"{where}.pretrained: ppzoo never downloads weights; set Global.pretrained_model to a "
                          ".pdparams file (convert PaddleClas weights with tools/convert_weights.py)",
                          key=f"{where}.pretrained")
    if "infer_add_softmax" in arch and not isinstance(arch["infer_add_softmax"], bool):
        raise ConfigError(f"'{where}.infer_add_softmax' must be bool, got {arch['infer_add_softmax']!r}",
                          key=f"{where}.infer_add_softmax")
    model_params = {k: v for k, v in arch.items() if k not in ARCH_KEYS and k != "num_classes"}
    is_file = isinstance(arch["name"], str) and os.path.exists(arch["name"]) and _path_loaders
    if not is_file:
        try:
            target, fixed = model_arguments(arch["name"])
        except ValueError as e:
            raise ConfigError(f"{where}.name: {e}", key=f"{where}.name") from None
        clash = sorted(set(model_params) & set(fixed))
        if clash:
            raise ConfigError(f"'{where}.{clash[0]}' is fixed by the model name ({clash[0]}={fixed[clash[0]]!r}); "
                              "choose another variant (ppzoo.list_models())", key=f"{where}.{clash[0]}")
        check_params(target, model_params, where)
    out = {k: v for k, v in arch.items() if k != "num_classes"}
    out["class_num"] = class_count(arch, global_, where)
    out.setdefault("infer_add_softmax", False)
    return out


def _check_arch(arch, resolved: dict) -> dict:
    global_ = resolved.get("Global", {})
    if isinstance(arch, dict) and arch.get("name") in _arch_kinds:
        return _arch_kinds[arch["name"]].check(arch, resolved)
    return check_model_arch(arch, global_)


register_section("Arch", _check_arch, order=10, required=True)
