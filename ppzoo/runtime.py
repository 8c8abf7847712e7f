"""Former location of ``ppzoo.utils.runtime``, kept so existing imports work."""
from ppzoo.utils.runtime import cpu_threads, select_device, set_cpu_threads  # noqa: F401
