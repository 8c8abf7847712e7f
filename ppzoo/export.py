"""Public alias of :mod:`ppzoo.deploy.export` (``ppzoo.export.export_model`` keeps working)."""
from ppzoo.deploy.export import (REQUIRED_FILES, ExportError, default_preprocess, export_from_config,  # noqa: F401
                                 export_model, read_metadata)
