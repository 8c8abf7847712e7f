"""The one exception every config problem raises."""
from typing import Optional

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config file, key or value is wrong; the message says where and what is valid.

    Attributes:
        key (str | None): the dotted key path at fault (``"Optimizer.lr.warmup_epoch"``),
            when one key is; ``load_config`` uses it to name the ``-o`` override that set it.
    """

    def __init__(self, message: str, key: Optional[str] = None):
        super().__init__(message)
        self.key = key
