"""The checks components use to declare and verify their config sections.

A component states its keys as ``{key: (type hint, default)}`` (``check_keys``) or lets a
factory's signature be the spec (``check_params``, ``check_named``: the parameters and
type hints of the function or class that will receive them). Every error is a
:class:`ConfigError` naming the key path and what would be valid.
"""
import copy
import difflib
import inspect
import typing
from typing import Any, Dict, List, Sequence, Union

from .errors import ConfigError

__all__ = ["check_type", "type_name", "check_keys", "check_params", "check_named", "check_list", "check_mapping",
           "unknown_key", "check_positive"]


def type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is Union:
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(hint))
    if origin in (list, List, Sequence, typing.get_origin(Sequence[int])):
        args = typing.get_args(hint)
        return f"list of {type_name(args[0])}" if args else "list"
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


def unknown_key(key: str, allowed, where: str) -> ConfigError:
    """The error for a key that is not in ``allowed``, with a did-you-mean."""
    close = difflib.get_close_matches(key, list(allowed), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; valid keys: {', '.join(sorted(allowed))}"
    if not where:
        return ConfigError(f"unknown section '{key}'{hint}", key=key)
    return ConfigError(f"unknown key '{where}.{key}'{hint}", key=f"{where}.{key}")


def check_mapping(value, where: str) -> dict:
    """``value`` must be a mapping (``None`` counts as empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"'{where}' must be a mapping, got {type(value).__name__}: {value!r}", key=where)
    return value


def check_keys(section, spec: Dict[str, tuple], where: str, extra: Sequence[str] = ()) -> dict:
    """Check a fixed-key section against ``{key: (type, default)}`` and fill defaults;
    keys in ``extra`` pass through unchecked (another spec checks them)."""
    section = check_mapping(section, where)
    out = {}
    for key, value in section.items():
        if not isinstance(key, str):
            raise ConfigError(f"'{where}' has a key that is not a name: {key!r}", key=where)
        if key in extra:
            out[key] = value
            continue
        if key not in spec:
            raise unknown_key(key, list(spec) + list(extra), where)
        hint, _ = spec[key]
        if not check_type(value, hint):
            raise ConfigError(f"'{where}.{key}' must be {type_name(hint)}, got {value!r}", key=f"{where}.{key}")
        out[key] = value
    for key, (_, default) in spec.items():
        out.setdefault(key, copy.deepcopy(default))
    return out


def check_positive(section: dict, keys: Sequence[str], where: str, minimum=1) -> None:
    """Each of ``keys`` in ``section`` must be >= ``minimum``."""
    for key in keys:
        if section[key] < minimum:
            raise ConfigError(f"'{where}.{key}' must be >= {minimum}, got {section[key]}", key=f"{where}.{key}")


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
        raise ConfigError(f"'{where}' must be a mapping of parameters, got {params!r}", key=where)
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
            raise unknown_key(key, [k for k in named if k not in skip], where)
        hint = hints.get(key)
        if hint is not None and not check_type(value, hint):
            raise ConfigError(f"'{where}.{key}' must be {type_name(hint)}, got {value!r}", key=f"{where}.{key}")


def check_named(entry, registry: Dict[str, Any], kind: str, where: str, skip: Sequence[str] = (),
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
        raise ConfigError(f"'{where}' must be '- {kind}Name: {{params}}' or have a 'name' key, got {entry!r}",
                          key=where)
    if not isinstance(name, str):
        raise ConfigError(f"'{where}': a {kind} name must be a string, got {name!r}", key=where)
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.4)
        hint = f"did you mean {' or '.join(close)}?" if close else f"valid: {', '.join(sorted(registry))}"
        raise ConfigError(f"unknown {kind} '{name}' at '{where}'; {hint}", key=where)
    params = params or {}
    check_params(registry[name], params, loc, skip)
    if build:
        try:
            registry[name](**{k: v for k, v in params.items() if k not in skip})
        except (ValueError, TypeError) as e:
            raise ConfigError(f"'{loc}': {e}", key=loc) from None
    return name, params


def check_list(value, registry, kind: str, where: str, build: bool = True) -> list:
    """A list of components -> the canonical ``[{Name: {params}}, ...]`` the builders read."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"'{where}' must be a list of '- {kind}Name: {{params}}' entries, got {value!r}", key=where)
    return [dict([check_named(entry, registry, kind, f"{where}.{i}", build=build)]) for i, entry in enumerate(value)]
