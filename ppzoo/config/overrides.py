"""``-o Key.sub.0.key=value`` overrides, parsed as YAML (never ``eval``)."""
from typing import List

import yaml

from .errors import ConfigError
from .io import parse_yaml_value

__all__ = ["parse_override", "apply_override"]


def parse_override(text: str):
    """``"A.b.0.c=value"`` -> (["A", "b", "0", "c"], parsed value). Splits on the first
    ``=`` only; the value is YAML (``1e-3``, ``[1, 5]``, ``null``, ``true``, ``a=b``). A
    ``!!python/...`` tag (or any tag the safe loader cannot build) is refused, not kept as text."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like Key.sub=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not key.strip() or any(not p for p in path):
        raise ConfigError(f"override '{text}': empty key part in '{key}'")
    if raw.lstrip().startswith("!"):
        raise ConfigError(f"override '{text}': YAML tags are not accepted in values; write the plain value",
                          key=key.strip())
    try:
        value = parse_yaml_value(raw) if raw.strip() else None
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(f"override '{text}': {e.problem or e}", key=key.strip()) from None
    except yaml.YAMLError:
        value = raw  # not YAML: keep the text as a string
    return path, value


def apply_override(cfg: dict, text: str) -> None:
    """Set the value an override names, creating missing mappings on the way."""
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
