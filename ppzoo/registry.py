"""Model registry: one dict of builders, one dict of metadata.

``register_model`` adds a builder, ``create_model`` builds one by name, ``list_models``
filters names with shell-style wildcards and ``model_info`` returns the published facts
(family, paper, input size, params, MAdds, top-1) recorded beside each builder.
"""
import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info", "resolve_name"]


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
    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)
    paddleclas_names: Tuple[str, ...] = ()  # PaddleClas arch names that map onto this variant
    paddleclas_kwargs: Dict = field(default_factory=dict)  # kwargs that give PaddleClas's layout
    notes: str = ""

    @property
    def paper_url(self) -> str:
        if not self.paper or "://" in self.paper:
            return self.paper
        return f"https://arxiv.org/abs/{self.paper}"


_model_entrypoints: Dict[str, Callable] = {}  # registry name -> builder(**kwargs) -> nn.Layer
_model_info: Dict[str, ModelInfo] = {}  # registry name -> published facts
_paddleclas_names: Dict[str, str] = {}  # lower-cased PaddleClas name -> registry name


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


def resolve_name(name: str) -> Tuple[str, Dict]:
    """Map a registry name or a PaddleClas arch name to ``(registry name, extra kwargs)``.

    PaddleClas names (``MobileNetV1_x0_5``, ``MobileNetV2``, ``AlexNet``) resolve to the
    variant with PaddleClas's layout, so PaddleClas weights load without conversion tricks.
    Raises ``ValueError`` listing the closest registered names when nothing matches.
    """
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {name!r}")
    if name in _model_entrypoints:
        return name, {}
    if name.lower() in _paddleclas_names:
        key = _paddleclas_names[name.lower()]
        return key, dict(_model_info[key].paddleclas_kwargs)
    if name.lower() in _model_entrypoints:
        return name.lower(), {}
    candidates = list(_model_entrypoints) + [a for info in _model_info.values() for a in info.paddleclas_names]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5) or difflib.get_close_matches(
        name.lower(), list(_model_entrypoints), n=5, cutoff=0.3)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise ValueError(f"unknown model '{name}'{hint} (ppzoo.list_models() lists all {len(_model_entrypoints)})")


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered (or PaddleClas) model name."""
    return _model_info[resolve_name(name)[0]]


def create_model(name: str, num_classes: int = 1000, pretrained: Optional[str] = None, **kwargs):
    """Build a registered model.

    Args:
        name: registry name (``list_models()``) or a PaddleClas arch name.
        num_classes: size of the classifier; 0 removes it (the model returns pooled
            features). PaddleClas's ``class_num`` is accepted as an alias.
        pretrained: path of a ``.pdparams`` file (ours, a ppzoo checkpoint, or converted
            with ``tools/convert_weights.py``). Shapes must match exactly.
        **kwargs: passed to the model class (``in_channels``, ``drop_rate``,
            ``small_input``, family options such as ``groups`` or ``layout``).
    """
    key, extra = resolve_name(name)
    if "class_num" in kwargs:
        class_num = kwargs.pop("class_num")
        if num_classes not in (1000, class_num):
            raise ValueError(f"num_classes={num_classes} and class_num={class_num} disagree; pass one of them")
        num_classes = class_num
    model = _model_entrypoints[key](num_classes=num_classes, **{**extra, **kwargs})
    if pretrained:
        from .weights import load_weights

        load_weights(model, pretrained)
    return model
