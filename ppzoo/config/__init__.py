"""YAML configs in PaddleClas's schema, checked before anything runs.

``load_config(path, overrides)`` reads a file (``io``: ``_base_: [files]`` inheritance, a
deep merge, duplicate keys refused), applies ``-o Key.sub.0.key=value`` overrides
(``overrides``), and lets each section's owner check it (``sections``: ``register_section``;
the checks themselves use ``checking``). Compared with PaddleClas:

* override values are parsed as YAML with a safe loader (never ``eval``; ``1e-3`` is a float)
  and may contain ``=``;
* an unknown key, in the file or in ``-o``, is an error with a did-you-mean, not a new field;
* a wrong type names the key and the expected type (``ConfigError.key`` holds the path);
* component names (models, datasets, transforms, optimizers, schedules, losses) and their
  parameters are checked against the code that will receive them;
* PaddleClas keys that ppzoo accepts but ignores are listed in one place
  (``PADDLECLAS_IGNORED``) and announced when a config sets them.

Where the sections are declared: ``Global``, ``Loss``, ``Metric``, ``Optimizer``, ``AMP``,
``EMA`` in ``ppzoo/engine/spec.py``; ``Arch`` in ``ppzoo/registry.py``; ``DataLoader`` in
``ppzoo/data/spec.py``; ``Infer`` in ``ppzoo/deploy/spec.py``; ``Slim`` in ``ppzoo/compress``.
"""
from .checking import (check_keys, check_list, check_mapping, check_named, check_params, check_positive, check_type,
                       type_name, unknown_key)
from .errors import ConfigError
from .io import dump_config
from .overrides import parse_override
from .sections import PADDLECLAS_IGNORED, ignored_keys, load_config, register_section, registered_sections, validate

__all__ = ["ConfigError", "load_config", "parse_override", "dump_config", "check_params", "check_type",
           "check_keys", "check_list", "check_mapping", "check_named", "check_positive", "type_name", "unknown_key",
           "register_section", "registered_sections", "validate", "PADDLECLAS_IGNORED", "ignored_keys"]
