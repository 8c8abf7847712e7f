"""Which sections a config may have, who checks each, and ``load_config``.

A component that owns a section registers its checker where it lives
(``register_section("Optimizer", check_optimizer, order=40)`` in ``ppzoo/engine/spec.py``),
so a new section (``Slim``, ``Distill``) needs no edit here. ``validate`` runs the checkers
in ``order``; each gets the raw value and the sections resolved so far (``Arch`` reads
``Global.class_num``).
"""
import fnmatch
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence

from .checking import unknown_key
from .errors import ConfigError
from .io import load_with_bases
from .overrides import apply_override

__all__ = ["register_section", "registered_sections", "validate", "load_config", "PADDLECLAS_IGNORED",
           "ignored_keys"]


@dataclass(frozen=True)
class _Section:
    name: str
    check: Callable[[Any, dict], Any]  # (raw value or None, resolved sections so far) -> resolved value
    order: int
    required: bool
    always: bool  # run the checker (with None) when the section is absent, to fill its defaults


_SECTIONS: Dict[str, _Section] = {}  # section name -> its checker

# PaddleClas keys we accept (so its configs load unchanged) and ignore: pattern (dotted key
# path, fnmatch) -> (reason, values that are what ppzoo does anyway and need no notice).
# A config that sets one to another value gets a one-line notice.
PADDLECLAS_IGNORED = {
    "DataLoader.*.sampler.name": ("ppzoo always uses a distributed batch sampler, which in one process is the "
                                  "same as BatchSampler", ("DistributedBatchSampler",)),
    "Infer.infer_imgs": ("tools/infer.py takes the images with -i", ()),
    "Infer.batch_size": ("tools/infer.py takes the batch size with --batch-size", (1,)),
    "*.ResizeImage.backend": ("ppzoo resizes with PIL", ("pil",)),
    "*.ResizeImage.return_numpy": ("ppzoo's transforms always pass numpy arrays", (True,)),
}


def register_section(name: str, check: Callable[[Any, dict], Any], *, order: int = 100, required: bool = False,
                     always: bool = False) -> None:
    """Declare config section ``name``, checked by ``check(value, resolved_so_far)``.

    Args:
        name: the section's key at the top of a config.
        check: returns the section with defaults filled; raises ``ConfigError``.
        order: checkers run in ascending order (Global 0, Arch 10, ... Slim 90).
        required: a config without the section is an error.
        always: run ``check(None, ...)`` when the section is absent, to fill its defaults.
    """
    if name in _SECTIONS:
        raise ValueError(f"config section '{name}' is already registered")
    _SECTIONS[name] = _Section(name, check, order, required, always)


def registered_sections() -> list:
    """Section names in checking order."""
    return [s.name for s in sorted(_SECTIONS.values(), key=lambda s: s.order)]


def validate(cfg: dict) -> dict:
    """Check every section, fill defaults, return the resolved config."""
    for key in cfg:
        if key not in _SECTIONS:
            raise unknown_key(str(key), registered_sections(), "")
    out = {}
    for section in sorted(_SECTIONS.values(), key=lambda s: s.order):
        if section.name in cfg:
            out[section.name] = section.check(cfg[section.name], out)
        elif section.required:
            raise ConfigError(f"section '{section.name}' is missing", key=section.name)
        elif section.always:
            out[section.name] = section.check(None, out)
    return out


def _key_paths(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path, value
            yield from _key_paths(value, path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _key_paths(value, f"{prefix}.{i}")


def ignored_keys(cfg: dict) -> list:
    """``(key path, reason)`` for every key of ``cfg`` that ppzoo accepts and ignores."""
    return [(path, reason) for path, value in _key_paths(cfg)
            for pattern, (reason, harmless) in PADDLECLAS_IGNORED.items()
            if fnmatch.fnmatchcase(path, pattern) and value not in harmless]


def _blame(error: ConfigError, overrides: Sequence[str]) -> Optional[str]:
    """The last override whose key is, contains or lies under the key at fault."""
    if not error.key:
        return None
    for text in reversed(list(overrides)):
        key = text.split("=", 1)[0].strip()
        if key == error.key or key.startswith(error.key + ".") or error.key.startswith(key + "."):
            return text
    return None


def load_config(path: str, overrides: Sequence[str] = (), quiet: bool = False) -> dict:
    """Read, merge ``_base_`` files, apply ``-o`` overrides, validate and fill defaults.

    Keys PaddleClas has and ppzoo ignores (``PADDLECLAS_IGNORED``) get a one-line notice on
    stderr unless ``quiet``.

    Raises:
        ConfigError: one line naming the file, key or value and what would be valid. An
        error about a key an override set says ``-o KEY=VALUE: ...``.
    """
    cfg = load_with_bases(path)
    for text in overrides or ():
        apply_override(cfg, text)
    if not quiet:
        for key, reason in ignored_keys(cfg):
            print(f"notice: {path}: '{key}' is accepted for PaddleClas compatibility and ignored ({reason})",
                  file=sys.stderr)
    try:
        return validate(cfg)
    except ConfigError as e:
        culprit = _blame(e, overrides or ())
        raise ConfigError(f"-o {culprit}: {e}" if culprit else f"{path}: {e}", key=e.key) from None
