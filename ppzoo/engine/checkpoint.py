"""Checkpoints that a crash, Ctrl-C or ``kill`` cannot leave half-written.

``<prefix>.pdckpt`` holds everything a resume needs (model, optimizer with its LR schedule,
every stateful hook's state (EMA, pruning masks, ...), AMP scaler, epoch, step, best metric, RNG states); ``<prefix>.pdparams`` holds the model
weights alone (for ``Global.pretrained_model``, export and PaddleClas). Both are written
with ``ppzoo.utils.fileio.write_together``: the previous pair stays intact until the new
one is complete, even through ``kill -9``; the trainer writes one epoch's checkpoints,
best weights and ``metrics.json`` as one such unit (:func:`checkpoint_files`).
"""
import os
import random
from typing import Optional

import numpy as np
import paddle

from ..utils.fileio import atomic_write, write_together
from ..utils.weights import WeightsError, load_weights, safe_load

__all__ = ["atomic_save", "save_checkpoint", "checkpoint_files", "load_checkpoint", "resolve_checkpoint"]

CKPT_SUFFIX = ".pdckpt"


def atomic_save(obj, path: str) -> None:
    """``paddle.save`` to ``path`` via a temporary file and an atomic rename."""
    atomic_write(path, lambda tmp: paddle.save(obj, tmp))


def _rename_keys(state: dict, pairs) -> dict:
    """Rename optimizer-state keys (and ``master_weights`` keys) by parameter-name prefix."""
    out = {}
    for key, value in state.items():
        if key == "master_weights":
            out[key] = {_rename(k, pairs): v for k, v in value.items()}
        else:
            out[_rename(key, pairs)] = value
    return out


def _rename(key: str, pairs) -> str:
    for old, new in pairs:
        if key == old or key.startswith(old + "_"):
            return new + key[len(old):]
    return key


def _name_pairs(model, to_structured: bool):
    """(from, to) parameter names, longest first: Paddle's internal names (``conv2d_7.w_0``,
    which change with the order models are built in) and structured ones."""
    pairs = [(p.name, n) if to_structured else (n, p.name) for n, p in model.named_parameters()]
    return sorted(pairs, key=lambda t: -len(t[0]))


def rng_states() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "paddle": paddle.get_rng_state()}
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        state["cuda"] = paddle.get_cuda_rng_state()
    return state


def set_rng_states(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    paddle.set_rng_state(state["paddle"])
    if "cuda" in state and paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        paddle.set_cuda_rng_state(state["cuda"])


def checkpoint_files(prefix: str, model, optimizer=None, scaler=None, hooks=None, meta: Optional[dict] = None,
                     weights_only: bool = False) -> list:
    """The ``(path, write)`` pairs of ``prefix.pdckpt`` (unless ``weights_only``) and
    ``prefix.pdparams``, for :func:`ppzoo.utils.fileio.write_together`; the state is taken now."""
    files = []
    if not weights_only:
        ckpt = {
            "model": model.state_dict(),
            # keyed by structured names; includes the LR scheduler's state
            "optimizer": _rename_keys(optimizer.state_dict(), _name_pairs(model, True)) if optimizer else None,
            "hooks": hooks.state_dict() if hooks is not None else {},  # HookList: each stateful hook's state
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_states(),
            "meta": meta or {},
        }
        files.append((prefix + CKPT_SUFFIX, lambda tmp: paddle.save(ckpt, tmp)))
    weights = model.state_dict()
    files.append((prefix + ".pdparams", lambda tmp: paddle.save(weights, tmp)))
    return files


def save_checkpoint(prefix: str, model, optimizer=None, scaler=None, hooks=None, meta: Optional[dict] = None,
                    weights_only: bool = False) -> None:
    """Write ``prefix.pdparams`` and (unless ``weights_only``) ``prefix.pdckpt`` as one
    unit: SIGINT/SIGTERM wait until both are written, and after a ``kill -9`` both hold the
    old step or both the new one (see ``write_together``)."""
    write_together(checkpoint_files(prefix, model, optimizer, scaler, hooks, meta, weights_only))


def resolve_checkpoint(path: str) -> str:
    """Accept ``x.pdckpt``, the prefix ``x``, or ``x.pdparams`` next to ``x.pdckpt``."""
    for candidate in (path, path + CKPT_SUFFIX, os.path.splitext(path)[0] + CKPT_SUFFIX):
        if candidate.endswith(CKPT_SUFFIX) and os.path.isfile(candidate):
            return candidate
    raise WeightsError(f"checkpoint not found: {path} (expected {path}{CKPT_SUFFIX} written by tools/train.py; "
                       "for weights only use Global.pretrained_model)")


def load_checkpoint(path: str, model, optimizer=None, scaler=None, hooks=None, arch: Optional[str] = None,
                    weights_only: bool = False) -> dict:
    """Restore a checkpoint written by :func:`save_checkpoint` (the optimizer's state holds
    its LR scheduler's); returns its ``meta``.

    With ``weights_only`` the model gets the weights the run evaluated with (the EMA
    average when the run kept one) and nothing else is restored. ``hooks`` (a
    ``HookList``) get their saved states back; a saved state no hook of this run takes is
    an error (resuming without the method that wrote it would not be exact).

    Raises ``WeightsError`` when the file is unreadable or belongs to another model, and
    ``UnsafeWeightsError`` when it would run code (see ``ppzoo.utils.weights.safe_load``).
    """
    path = resolve_checkpoint(path)
    state = safe_load(path)  # refuses pickles that would run code
    if not isinstance(state, dict) or "model" not in state or "meta" not in state:
        raise WeightsError(f"{path} is not a ppzoo training checkpoint")
    meta = state["meta"]
    if arch is not None and meta.get("arch") not in (None, arch):
        raise WeightsError(f"checkpoint {path} was written for model '{meta['arch']}', but the config builds "
                           f"'{arch}'")
    saved_hooks = state.get("hooks") or {}
    if weights_only:
        ema = saved_hooks.get("ema")
        load_weights(model, ema["module"] if ema else state["model"], source=path)
        return meta
    load_weights(model, state["model"], source=path)
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.set_state_dict(_rename_keys(state["optimizer"], _name_pairs(model, False)))
    if hooks is not None:
        unused = hooks.unused_states(saved_hooks)
        if unused:
            raise WeightsError(f"checkpoint {path} holds the state of {', '.join(unused)}, which this run does not "
                               "use; resume with the config that wrote it")
        hooks.set_state_dict(saved_hooks)
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if state.get("rng"):
        set_rng_states(state["rng"])
    return meta
