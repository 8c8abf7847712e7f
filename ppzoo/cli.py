"""Former location of ``ppzoo.utils.cli``, kept so existing imports work."""
from ppzoo.utils.cli import config_parser, run  # noqa: F401
