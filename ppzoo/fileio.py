"""Former location of ``ppzoo.utils.fileio``, kept so existing imports work."""
from ppzoo.utils.fileio import atomic_write, deferred_signals, write_json  # noqa: F401
