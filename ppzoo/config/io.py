"""Reading YAML configs: a safe loader, ``_base_`` inheritance with a deep merge, dumping.

The loader is ``yaml.SafeLoader`` (no tag can build a Python object) that also reads
``1e-3`` as a float, as PaddleClas users write it, and refuses a key given twice in one
mapping (PyYAML keeps the last silently).
"""
import copy
import os
import re
from typing import Sequence

import yaml

from .errors import ConfigError

__all__ = ["read_yaml", "load_with_bases", "merge", "parse_yaml_value", "dump_config"]


class _Loader(yaml.SafeLoader):
    """SafeLoader + ``1e-3`` floats + an error on duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hashable = key in seen
            except TypeError:  # an unhashable key: let PyYAML report it
                break
            if hashable:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice in the same mapping (first at line "
                                f"{seen[key] + 1}); keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml_value(text):
    """Parse YAML text with the config loader (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str) -> dict:
    """One YAML file as a mapping of sections (empty file: ``{}``)."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = parse_yaml_value(f)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        kind = "YAML error" if isinstance(e, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ConfigError(f"{where}: {kind}: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML error: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def merge(base: dict, top: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_with_bases(path: str, chain: Sequence[str] = ()) -> dict:
    """``path`` merged over its ``_base_`` files (relative to it, recursively, in order)."""
    if os.path.abspath(path) in map(os.path.abspath, chain):
        raise ConfigError(f"_base_ cycle: {' -> '.join(list(chain) + [path])}")
    data = read_yaml(path)
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
        merged = merge(merged, load_with_bases(base_path, list(chain) + [path]))
    return merge(merged, data)


def dump_config(cfg: dict) -> str:
    """The resolved config as YAML (what ``--print-config`` shows)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, allow_unicode=True)
