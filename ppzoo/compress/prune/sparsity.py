"""Sparsity during training (hooks) and compact storage of sparse weights.

* :class:`SlimmingHook` (network slimming, Liu et al., arXiv 1708.06519, Sec. 3, Eq. 1): adds
  the sub-gradient ``coeff * sign(gamma)`` of an L1 penalty on every BatchNorm scale in
  ``after_backward``; the channels are then removed by a global threshold on |gamma|
  (``Slim.prune: {name: bn_scale, global: true}``, :meth:`Pruner.global_threshold`).
* :class:`GMPHook` (gradual magnitude pruning, Zhu & Gupta, arXiv 1710.01878, Eq. 1):
  unstructured masks whose sparsity follows ``s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n dt))^3``
  from ``begin_step`` to ``end_step``, recomputed every ``frequency`` steps from the weight
  magnitudes of each layer, applied after every optimizer step; masks and the schedule's
  position are the hook's checkpoint state (a resumed run continues exactly); ``finalize``
  bakes the zeros into the weights and drops the masks.
* :func:`save_sparse` / :func:`load_sparse`: weights stored as a bitmask of the non-zeros
  plus their values (float32, or 8-bit codes of a per-tensor linear scale as in Deep
  Compression's storage, arXiv 1510.00149, Sec. 3), and back to a dense state dict.
"""
import fnmatch
import io
import zipfile
from typing import Dict, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from ...utils.fileio import atomic_write
from ...utils.hooks import Hook

__all__ = ["SlimmingHook", "GMPHook", "gmp_sparsity", "prunable_weights", "magnitude_masks", "save_sparse",
           "load_sparse", "sparsity_of"]

_NORMS = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D)


class SlimmingHook(Hook):
    """L1 on BatchNorm scales: ``grad(gamma) += coeff * sign(gamma)`` after every backward.

    Args:
        coeff (float): lambda of Eq. 1 (the paper uses 1e-4 to 1e-5). Must be > 0.
    """

    name = "bn_l1"

    def __init__(self, coeff: float):
        if not isinstance(coeff, (int, float)) or coeff <= 0:
            raise ValueError(f"Slim.sparsity.coeff must be a number > 0, got {coeff!r}")
        self.coeff = float(coeff)

    @paddle.no_grad()
    def after_backward(self, model) -> None:
        for layer in model.sublayers():
            if isinstance(layer, _NORMS) and layer.weight is not None and layer.weight.grad is not None:
                g = layer.weight.grad
                g.set_value(g + self.coeff * paddle.sign(layer.weight))


def gmp_sparsity(step: int, initial: float, final: float, begin: int, end: int) -> float:
    """Zhu & Gupta's cubic schedule (Eq. 1) at optimizer step ``step`` (counted from 1):
    0 before ``begin``, ``initial`` at ``begin``, ``final`` from ``end`` on."""
    if step < begin:
        return 0.0
    if step >= end:
        return final
    return final + (initial - final) * (1.0 - (step - begin) / (end - begin)) ** 3


def prunable_weights(model: nn.Layer, exclude: Sequence[str] = ()) -> Dict[str, paddle.Tensor]:
    """Weights of every Conv2D and Linear (biases, BN and excluded patterns aside), by name."""
    out = {}
    for name, layer in model.named_sublayers():
        if isinstance(layer, (nn.Conv2D, nn.Linear)) and not any(fnmatch.fnmatchcase(name, p) for p in exclude):
            out[f"{name}.weight"] = layer.weight
    return out


def magnitude_masks(weights: Dict[str, paddle.Tensor], sparsity: float) -> Dict[str, np.ndarray]:
    """Per tensor, keep the ``1 - sparsity`` largest magnitudes (ties broken by position)."""
    masks = {}
    for name, w in weights.items():
        v = np.abs(w.numpy()).ravel()
        k = int(np.floor(sparsity * v.size))
        mask = np.ones(v.size, bool)
        if k > 0:
            mask[np.argsort(v, kind="stable")[:k]] = False
        masks[name] = mask.reshape(w.shape)
    return masks


class GMPHook(Hook):
    """Gradual magnitude pruning with masks applied after every optimizer step.

    Args:
        final_sparsity (float): sparsity at ``end_step``, in (0, 1).
        initial_sparsity (float): sparsity at ``begin_step``. Default: 0.
        begin_step (int): first step of the schedule. Default: 0.
        end_step (int): step at which the final sparsity is reached. Must exceed ``begin_step``.
        frequency (int): steps between mask updates (the paper's dt). Default: 100.
        exclude (sequence of str): layer name patterns left dense. Default: none.
    """

    name = "gmp"

    def __init__(self, final_sparsity: float, end_step: int, initial_sparsity: float = 0.0, begin_step: int = 0,
                 frequency: int = 100, exclude: Sequence[str] = ()):
        if not 0.0 < final_sparsity < 1.0:
            raise ValueError(f"Slim.sparsity.final_sparsity must be in (0, 1), got {final_sparsity!r}")
        if not 0.0 <= initial_sparsity <= final_sparsity:
            raise ValueError(f"Slim.sparsity.initial_sparsity must be in [0, final_sparsity], got {initial_sparsity!r}")
        if not (isinstance(end_step, int) and isinstance(begin_step, int) and 0 <= begin_step < end_step):
            raise ValueError(f"Slim.sparsity needs 0 <= begin_step < end_step, got {begin_step!r} and {end_step!r}")
        if not isinstance(frequency, int) or frequency < 1:
            raise ValueError(f"Slim.sparsity.frequency must be an int >= 1, got {frequency!r}")
        self.final, self.initial, self.begin, self.end = float(final_sparsity), float(initial_sparsity), begin_step, end_step
        self.frequency, self.exclude = frequency, tuple(exclude)
        self.masks: Dict[str, np.ndarray] = {}
        self.sparsity = 0.0

    def target(self, step: int) -> float:
        return gmp_sparsity(step, self.initial, self.final, self.begin, self.end)

    @paddle.no_grad()
    def _apply(self, weights) -> None:
        for name, mask in self.masks.items():
            w = weights[name]
            w.set_value(w * paddle.to_tensor(mask, dtype=w.dtype))

    def after_step(self, model, step: int) -> None:
        weights = prunable_weights(model, self.exclude)
        if step >= self.begin and (step - self.begin) % self.frequency == 0 and step <= self.end + self.frequency:
            s = self.target(step)
            if s > self.sparsity or not self.masks:
                self.masks, self.sparsity = magnitude_masks(weights, s), s
        if self.masks:
            self._apply(weights)

    def state_dict(self) -> dict:
        return {"sparsity": self.sparsity, "masks": {k: np.packbits(v.ravel()) for k, v in self.masks.items()},
                "shapes": {k: list(v.shape) for k, v in self.masks.items()}}

    def set_state_dict(self, state: dict) -> None:
        self.sparsity = float(state["sparsity"])
        self.masks = {k: np.unpackbits(np.asarray(v), count=int(np.prod(state["shapes"][k]))).astype(bool)
                      .reshape(state["shapes"][k]) for k, v in state["masks"].items()}

    def finalize(self, model):
        if self.masks:
            self._apply(prunable_weights(model, self.exclude))
        self.masks = {}
        return model


def sparsity_of(state: Dict[str, np.ndarray], names: Optional[Sequence[str]] = None) -> float:
    names = names or [k for k, v in state.items() if np.ndim(v) >= 2]
    total = sum(np.size(state[k]) for k in names)
    return sum(int((np.asarray(state[k]) == 0).sum()) for k in names) / max(total, 1)


def save_sparse(state: Dict[str, np.ndarray], path: str, bits: int = 32, min_sparsity: float = 0.3) -> int:
    """Write ``state`` (name -> array) to ``path`` (a zip of .npy files, not compressed):
    tensors with at least ``min_sparsity`` zeros as a bitmask + non-zero values (float32, or
    with ``bits=8`` uint8 codes of a linear scale over [min, max] of the non-zeros), the rest
    dense. Returns the file size in bytes."""
    if bits not in (8, 32):
        raise ValueError(f"sparse storage bits must be 8 or 32, got {bits!r}")
    arrays = {}
    for name, value in state.items():
        v = np.asarray(value)
        zeros = float((v == 0).mean()) if v.size else 0.0
        if v.ndim >= 2 and zeros >= min_sparsity:
            nz = v[v != 0].astype("float32")
            arrays[f"{name}/mask"] = np.packbits((v != 0).ravel())
            arrays[f"{name}/shape"] = np.array(v.shape, dtype="int64")
            if bits == 8 and nz.size:
                lo, hi = float(nz.min()), float(nz.max())
                scale = (hi - lo) / 255.0 or 1.0
                arrays[f"{name}/codes"] = np.round((nz - lo) / scale).astype("uint8")
                arrays[f"{name}/range"] = np.array([lo, scale], dtype="float32")
            else:
                arrays[f"{name}/values"] = nz
        else:
            arrays[f"{name}/dense"] = v

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for key, arr in arrays.items():
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                z.writestr(key + ".npy", buf.getvalue())

    atomic_write(path, write)
    import os

    return os.path.getsize(path)


def load_sparse(path: str) -> Dict[str, np.ndarray]:
    """The dense state dict a :func:`save_sparse` file holds (8-bit values decoded)."""
    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read sparse weights {path}: {e}") from None
    parts: Dict[str, dict] = {}
    with z:
        for info in z.infolist():
            name, _, kind = info.filename[:-4].rpartition("/")
            parts.setdefault(name, {})[kind] = np.load(io.BytesIO(z.read(info)), allow_pickle=False)
    state = {}
    for name, p in parts.items():
        if "dense" in p:
            state[name] = p["dense"]
            continue
        shape = tuple(int(s) for s in p["shape"])
        mask = np.unpackbits(p["mask"], count=int(np.prod(shape))).astype(bool)
        if "codes" in p:
            lo, scale = p["range"]
            values = p["codes"].astype("float32") * scale + lo
        else:
            values = p["values"]
        dense = np.zeros(mask.size, dtype="float32")
        dense[mask] = values
        state[name] = dense.reshape(shape)
    return state
