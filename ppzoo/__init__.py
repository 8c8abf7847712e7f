"""ppzoo: a PaddlePaddle model zoo for lightweight CNNs."""
import os
import warnings

# Paddle's C++ side logs warnings through glog (e.g. on every jit.save); keep errors only
# unless the user asks for more with GLOG_minloglevel
os.environ.setdefault("GLOG_minloglevel", "2")

# paddle.utils.cpp_extension warns about ccache on import; it concerns C++ extension builds only
warnings.filterwarnings("ignore", message="(?s).*ccache", category=UserWarning)
# BatchNorm's train-mode notice, printed on every training run
warnings.filterwarnings("ignore", message="When training, we now always track global mean", category=UserWarning)
try:
    import paddle  # noqa: F401
except ImportError as e:  # paddlepaddle is an extra so that CPU and GPU builds never collide
    raise ImportError("ppzoo needs PaddlePaddle 3.x: pip install 'ppzoo[cpu]' (or 'ppzoo[gpu]' on a CUDA "
                      "machine, never both)") from e

from . import layers, models  # noqa: F401  (importing models registers them)
from .registry import ModelInfo, create_model, list_models, model_info, register_model
# every layer above registers its config sections, Arch kinds and path loaders on import
from . import data, deploy, analysis, compress, engine  # noqa: F401,E402
from ._version import __version__
__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model", "__version__"]
