"""Reading and writing weight files, and loading them into a model, with errors that say
what is wrong.

Weight files are data, never code. ``.pdparams`` / ``.pdckpt`` files are pickles, and a
pickle can run anything when it is loaded; :func:`safe_load` reads them with an unpickler
that builds only plain containers, numbers, strings, numpy arrays and Paddle tensors (the
idea of ``torch.load(weights_only=True)``) and refuses any other import with
:class:`UnsafeWeightsError` before anything runs. ``.safetensors`` files (a header and raw
tensor bytes, no code at all) are our format for weights to publish and share.
"""
import io
import os
import pickle
from typing import Dict, List, Optional, Union

import numpy as np
import paddle

from .fileio import atomic_write

__all__ = ["read_state_dict", "load_weights", "save_weights", "safe_load", "WeightsError", "UnsafeWeightsError",
           "WEIGHT_SUFFIXES"]

WEIGHT_SUFFIXES = (".pdparams", ".safetensors")

# Everything a Paddle state dict, optimizer state or ppzoo checkpoint pickles: containers,
# numpy arrays/scalars/dtypes (numpy 1 and 2 module names), bytes of protocol-2 pickles
# (``_codecs.encode``), and Paddle's RNG state (a tuple of ints inside).
_ALLOWED_GLOBALS = frozenset({
    ("collections", "OrderedDict"),
    ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"),
    ("_codecs", "encode"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("paddle.base.libpaddle", "GeneratorState"),
})


class WeightsError(ValueError):
    """A weight file is missing, unreadable, or does not fit the model."""


class UnsafeWeightsError(WeightsError):
    """A weight file that would import (and so could run) code when loaded."""


class _DataOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1")  # as paddle.load reads Python 2 pickles
        self.path = path

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeWeightsError(
            f"refusing to load {self.path}: it would import {module}.{name}, and loading a pickle that imports "
            "code can run anything; weight files need only tensors, numbers and strings. Use weights from "
            "people you do not know only as .safetensors")

    def persistent_load(self, pid):
        raise UnsafeWeightsError(f"refusing to load {self.path}: it uses pickle persistent ids, which Paddle weight "
                                 "files never do")


def safe_load(path: str, return_numpy: bool = False):
    """``paddle.load`` for weight files, without running code from them.

    ``.safetensors`` files are read with safetensors. Anything else is first unpickled with
    an unpickler that allows only data (see the module docstring); if that passes, the same
    bytes go through ``paddle.load`` so tensors come back exactly as Paddle builds them.

    Raises:
        UnsafeWeightsError: the pickle imports anything but data types.
        WeightsError: the file cannot be read.
    """
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file

            state = load_file(path)
        except Exception as e:  # safetensors raises SafetensorError and others on corrupt files
            raise WeightsError(f"cannot read weight file {path}: {type(e).__name__}: {e}") from None
        return state if return_numpy else {k: paddle.to_tensor(v) for k, v in state.items()}
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise WeightsError(f"cannot read weight file {path}: {e.strerror}") from None
    try:
        _DataOnlyUnpickler(io.BytesIO(data), path).load()
    except UnsafeWeightsError:
        raise
    except pickle.UnpicklingError:
        pass  # not a pickle: paddle.load tries its binary tensor formats, which hold no code
    except Exception as e:  # truncated or corrupt pickles raise EOFError, ValueError, ...
        raise WeightsError(f"cannot read weight file {path}: {type(e).__name__}: {e}") from None
    try:
        return paddle.load(io.BytesIO(data), return_numpy=return_numpy)
    except Exception as e:  # paddle raises many types for corrupt files
        raise WeightsError(f"cannot read weight file {path}: {type(e).__name__}: {e}") from None


def save_weights(weights: Union[paddle.nn.Layer, Dict], path: str, metadata: Optional[Dict[str, str]] = None) -> str:
    """Write a model's (or a state dict's) weights atomically: ``.safetensors`` (with
    ``metadata``, text only) or ``.pdparams`` by the suffix of ``path``; returns ``path``."""
    state = weights.state_dict() if isinstance(weights, paddle.nn.Layer) else weights
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.numpy import save_file

        arrays = {k: np.ascontiguousarray(v.numpy() if isinstance(v, paddle.Tensor) else np.asarray(v))
                  for k, v in state.items()}
        atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata=metadata))
    elif path.endswith(".pdparams"):
        atomic_write(path, lambda tmp: paddle.save(
            {k: v if isinstance(v, paddle.Tensor) else paddle.to_tensor(v) for k, v in state.items()}, tmp))
    else:
        raise WeightsError(f"weight file name must end in {' or '.join(WEIGHT_SUFFIXES)}, got {path}")
    return path


def _resolve(path: str) -> str:
    """Accept ``x.pdparams``, ``x.safetensors`` or the PaddleClas-style prefix ``x``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        for suffix in WEIGHT_SUFFIXES:
            if os.path.isfile(path + suffix):
                return path + suffix
        raise WeightsError(f"weight file not found: {path} (expected a .pdparams or .safetensors file, or its "
                           "prefix)")
    return path


def _arch_hint(source: str) -> str:
    """Pruned (compressed) weights need the architecture file written beside them."""
    prefix = source[:-len(".pdparams")] if source.endswith(".pdparams") else source
    if os.path.isfile(prefix + ".arch.json"):
        return (f"; build it from {prefix}.arch.json, written beside these weights "
                f"(create_model('{prefix}.arch.json'), or -o Arch.name={prefix}.arch.json)")
    return ("; compressed (pruned) weights need the .arch.json file written beside them as the model "
            "(Arch.name: PATH.arch.json)")


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Read a ``.pdparams`` or ``.safetensors`` file (a state dict, or a ppzoo checkpoint
    holding one under ``"model"``) as numpy arrays, without running code from it."""
    path = _resolve(path)
    state = safe_load(path, return_numpy=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} holds no state dict (found {type(state).__name__})")
    return state


def _submodel_weights(model, own: Dict, weights: Dict) -> Dict:
    """The tensors of ``model`` inside a file that holds several models under name prefixes
    (a distillation run's ``Student.conv1.weight``, ``Student1...``; PaddleClas's also
    ``Teacher...``): those under ``model.weights_prefix`` (set on the model a
    DistillationModel deploys), else the one prefix whose tensors fit. Other files pass."""
    if any(k in weights for k in own):
        return weights
    prefixes = sorted({k.split(".", 1)[0] + "." for k in weights if "." in k})
    wanted = getattr(model, "weights_prefix", None)
    fitting = [p for p in prefixes if all(p + k in weights for k in own)]
    chosen = wanted if wanted in fitting else (fitting[0] if len(fitting) == 1 and wanted is None else None)
    if chosen is None:
        if wanted and prefixes:
            raise WeightsError(f"the weight file holds models {', '.join(p[:-1] for p in prefixes)}, but not "
                               f"'{wanted[:-1]}' (Arch.infer_model_name) with this architecture")
        return weights
    return {k[len(chosen):]: v for k, v in weights.items() if k.startswith(chosen)}


def load_weights(model: paddle.nn.Layer, weights: Union[str, Dict], skip_mismatched_classifier: bool = False,
                 source: str = None) -> List[str]:
    """Load a state dict (or a file) into ``model``; every tensor must fit.

    Args:
        model: the model to load into.
        weights: path of a ``.pdparams`` or ``.safetensors`` file (or its prefix) or a state dict.
        skip_mismatched_classifier: keep the model's own classifier when the file's has
            another number of classes (fine-tuning); the skipped names are returned.
            A file of several models under name prefixes (a distillation run's) gives
            the model its own (``model.weights_prefix``, or the one prefix that fits).
        source: name of the weights in error messages. Default: the path.

    Raises:
        WeightsError naming the first missing, unexpected or mismatching tensor and both shapes.
    """
    if isinstance(weights, (str, os.PathLike)):
        source = source or _resolve(weights)
        weights = read_state_dict(weights)
    source = source or "state dict"
    own = model.state_dict()
    weights = _submodel_weights(model, own, weights)
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} model tensors missing from the file (first: '{missing[0]}')")
        if unexpected:
            detail.append(f"{len(unexpected)} file tensors unknown to the model (first: '{unexpected[0]}')")
        prefix = source[:-len(".pdparams")] if source.endswith(".pdparams") else source
        if os.path.isfile(prefix + ".arch.json"):  # written by a compression pass: another structure
            raise WeightsError(f"{source} does not fit {type(model).__name__} ({'; '.join(detail)}): it holds a "
                               f"compressed model{_arch_hint(source)}")
        raise WeightsError(f"{source} does not fit {type(model).__name__}: {'; '.join(detail)}. Was it saved "
                           "from another model? PaddleClas weights need tools/convert_weights.py first.")
    head = {id(p) for p in model.get_classifier().parameters()} if hasattr(model, "get_classifier") else set()
    classifier = {n for n, p in model.named_parameters() if id(p) in head}
    skipped, state = [], {}
    for name, tensor in own.items():
        value = weights[name]
        if tuple(value.shape) != tuple(tensor.shape):
            if not (skip_mismatched_classifier and name in classifier):
                raise WeightsError(f"{source}: tensor '{name}' has shape {list(value.shape)} in the file but "
                                   f"{list(tensor.shape)} in the model{_arch_hint(source)}")
            skipped.append(name)
            value = tensor  # keep the model's own classifier
        state[name] = value
    model.set_state_dict(state)
    return skipped
