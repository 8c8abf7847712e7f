"""Binary networks: convert a trained model to binary layers, fine-tune it, store it bit-packed.

    from ppzoo.compress.quant import binarize_model, save_packed, load_packed
    model = binarize_model(model, activations=False)   # binary weights; first conv, last Linear kept
    ...fine-tune (tools/train.py with Slim.quant.name: binary does both)...
    info = save_packed(model, "out/binary_model.ppzb", arch=cfg["Arch"])  # bits + per-channel alphas
    model = load_packed("out/binary_model.ppzb")

Every ``Conv2D`` / ``Linear`` becomes :class:`ppzoo.layers.BinaryConv2D` /
:class:`~ppzoo.layers.BinaryLinear` except the first convolution and the last ``Linear``
(full precision, as in BinaryConnect, XNOR-Net and Bi-Real Net) and any layer matching a
``keep`` pattern. The change is a model pass (``binary``), so the ``.arch.json`` written with
the weights rebuilds the structure.

The packed file (an ``.npz``) stores each binary weight as ``np.packbits`` of its signs (1 bit
per weight, padded to a byte per tensor) and one float32 ``alpha`` per output channel; every
other tensor (BatchNorm, biases, full-precision layers) as float32. Paddle has no 1-bit
kernels, so the loaded model computes in float32: binary saves storage, not time.
"""
import fnmatch
import json
import os
import tempfile
from typing import List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from ..base import TrainingParts, add_pass, arch_record, register_pass, register_training_method, save_compressed
from ...layers.binary import BinaryConv2D, BinaryLinear

__all__ = ["binarize_model", "save_packed", "load_packed", "BinarizeHook"]

PACKED_FORMAT = "ppzoo.binary/1"


def _set_sublayer(model: nn.Layer, name: str, layer: nn.Layer) -> None:
    *parents, last = name.split(".")
    parent = model
    for part in parents:
        parent = getattr(parent, part)
    setattr(parent, last, layer)


def _candidates(model: nn.Layer) -> List[str]:
    return [n for n, layer in model.named_sublayers() if type(layer) in (nn.Conv2D, nn.Linear)]


def _depthwise(layer) -> bool:
    return isinstance(layer, nn.Conv2D) and layer._groups > 1 and layer._groups == layer._in_channels


def binarize_model(model: nn.Layer, activations: bool = False, shortcut: bool = True,
                   keep: Optional[Sequence[str]] = None, arch: Optional[dict] = None,
                   names: Optional[Sequence[str]] = None, depthwise: bool = False) -> nn.Layer:
    """Replace the model's Conv2D/Linear layers by binary ones, in place; returns ``model``.

    Args:
        model: the model (trained weights are copied into the binary layers).
        activations: binarize the layers' inputs too (sign with the hard-tanh STE).
            Default: False (binary weights only).
        shortcut: with ``activations``, Bi-Real-style real shortcuts where shapes agree.
            Default: True.
        keep: name patterns (fnmatch, e.g. ``"stem*"``) of further layers kept in full precision.
        arch: the model's ``Arch`` section (for the architecture record).
        names: the exact layers to binarize (used when rebuilding from a record).
        depthwise: binarize depthwise convolutions too. Default: False: a depthwise 3x3
            filter has 9 weights per channel, and on binary inputs its output takes so few
            values that a channel can be constant over a batch, BatchNorm's batch variance
            goes to 0 and the gradients explode (measured: 1e35 at the first step of
            ShuffleNetV1); binary MobileNet-style networks (ReActNet) keep them real too.
    """
    candidates = _candidates(model)
    if names is None:
        if not candidates:
            raise ValueError(f"{type(model).__name__} has no Conv2D or Linear layer to binarize")
        layers = dict(model.named_sublayers())
        convs = [n for n in candidates if isinstance(layers[n], nn.Conv2D)]
        linears = [n for n in candidates if isinstance(layers[n], nn.Linear)]
        full = set(convs[:1]) | set(linears[-1:]) | ({n for n in convs if _depthwise(layers[n])} if not depthwise
                                                     else set())
        for pattern in keep or ():
            if not any(fnmatch.fnmatch(n, pattern) for n in candidates):
                raise ValueError(f"binary keep pattern {pattern!r} matches no Conv2D/Linear layer; layers: "
                                 f"{', '.join(candidates[:8])}{', ...' if len(candidates) > 8 else ''}")
            full |= {n for n in candidates if fnmatch.fnmatch(n, pattern)}
        names = [n for n in candidates if n not in full]
    layers = dict(model.named_sublayers())
    for name in names:
        layer = layers.get(name)
        if layer is None or type(layer) not in (nn.Conv2D, nn.Linear):
            raise ValueError(f"cannot binarize '{name}': not a Conv2D/Linear layer of {type(model).__name__}")
        if isinstance(layer, nn.Conv2D):
            new = BinaryConv2D.from_conv(layer, binary_act=activations, shortcut=shortcut)
        else:
            new = BinaryLinear.from_linear(layer, binary_act=activations)
        new.train(layer.training)
        _set_sublayer(model, name, new)
    if arch is not None or getattr(model, "_ppzoo_arch", None) is not None:
        add_pass(model, "binary", {"activations": activations, "shortcut": shortcut, "layers": list(names)}, arch=arch)
    return model


def _rebuild(model, record):
    return binarize_model(model, record["activations"], record["shortcut"], names=record["layers"])


register_pass("binary", _rebuild)


def _binary_layers(model):
    return [(n, layer) for n, layer in model.named_sublayers() if isinstance(layer, (BinaryConv2D, BinaryLinear))]


def save_packed(model: nn.Layer, path: str, arch: Optional[dict] = None) -> dict:
    """Write ``model`` bit-packed to ``path`` (``.npz``); returns sizes: ``packed_bytes`` (the
    file), ``float32_bytes`` (all tensors as float32), ``binary_weight_bits`` (how many
    weights are stored as one bit) and the ratio for the binary layers alone."""
    record = arch_record(model, arch)
    binary = {f"{n}.weight": (layer, 1 if isinstance(layer, BinaryLinear) else 0) for n, layer in _binary_layers(model)}
    if not binary:
        raise ValueError("the model has no binary layers: binarize it first (binarize_model)")
    arrays, float_bytes, binary_float, binary_packed = {}, 0, 0, 0
    for key, tensor in model.state_dict().items():
        value = tensor.numpy()
        float_bytes += value.size * 4
        if key in binary:
            axis = binary[key][1]
            reduce = tuple(d for d in range(value.ndim) if d != axis)
            alpha = np.abs(value).mean(axis=reduce).astype("float32")
            bits = np.packbits((value >= 0).reshape(-1))
            arrays[f"bits::{key}"] = bits
            arrays[f"alpha::{key}"] = alpha
            binary_float += value.size * 4
            binary_packed += bits.nbytes + alpha.nbytes
        else:
            arrays[f"float::{key}"] = value.astype("float32")
    shapes = {k: list(model.state_dict()[k].shape) for k in binary}
    axes = {k: binary[k][1] for k in binary}
    header = {"format": PACKED_FORMAT, "arch": record, "shapes": shapes, "axes": axes}
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)  # bits do not compress; plain npz keeps loading simple
    os.replace(tmp, path)
    return {"packed_bytes": os.path.getsize(path), "float32_bytes": float_bytes,
            "binary_weights": int(sum(np.prod(s) for s in shapes.values())),
            "binary_layers_float32_bytes": binary_float, "binary_layers_packed_bytes": binary_packed,
            "binary_layers_ratio": binary_float / max(binary_packed, 1), "file_ratio": float_bytes / os.path.getsize(path)}


def load_packed(path: str) -> nn.Layer:
    """Rebuild the model :func:`save_packed` wrote (structure from its record, binary
    weights as ``alpha_c * sign``, which the binary layers reproduce exactly)."""
    from ..base import load_arch

    try:
        data = np.load(path)
        header = json.loads(bytes(data["header"]).decode("utf-8"))
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a ppzoo bit-packed model: {e}") from None
    if header.get("format") != PACKED_FORMAT:
        raise ValueError(f"{path} is not a ppzoo bit-packed model (format {PACKED_FORMAT})")
    with tempfile.TemporaryDirectory() as tmp:
        arch_file = os.path.join(tmp, "model.arch.json")
        with open(arch_file, "w", encoding="utf-8") as f:
            json.dump(header["arch"], f)
        model = load_arch(arch_file)
    state = {}
    for key in data.files:
        if key.startswith("float::"):
            state[key[7:]] = data[key]
        elif key.startswith("bits::"):
            name = key[6:]
            shape, axis = header["shapes"][name], header["axes"][name]
            count = int(np.prod(shape))
            signs = np.unpackbits(data[key])[:count].reshape(shape).astype("float32") * 2.0 - 1.0
            alpha_shape = [-1 if d == axis else 1 for d in range(len(shape))]
            state[name] = signs * data[f"alpha::{name}"].reshape(alpha_shape)
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} tensors of its model (e.g. {sorted(missing)[0]})")
    model.set_state_dict({k: paddle.to_tensor(v.astype("float32")) for k, v in state.items()})
    model.eval()
    return model


class BinarizeHook:
    """Training hook of ``Slim.quant.name: binary``: ``prepare`` binarizes the (trained)
    model, ``finalize`` writes ``binary_model.pdparams`` + ``.arch.json`` (for eval/export)
    and ``binary_model.ppzb`` (bit-packed) in the run's folder."""

    name = "Binarize"

    def __init__(self, params: dict, cfg: dict):
        self.params, self.cfg = params, cfg
        self.saved = None

    def prepare(self, model):
        from .qat import check_quantizable

        check_quantizable(model)
        return binarize_model(model, self.params["activations"], self.params["shortcut"], self.params["keep"],
                              arch=self.cfg["Arch"])

    def finalize(self, model):
        folder = os.path.join(self.cfg["Global"]["output_dir"], self.cfg["Arch"]["name"])
        prefix = os.path.join(folder, "binary_model")
        save_compressed(model, prefix)
        self.saved = save_packed(model, prefix + ".ppzb")
        with open(prefix + ".size.json", "w", encoding="utf-8") as f:
            json.dump(self.saved, f, indent=1)
        return model


@register_training_method
def binary_training(cfg: dict, model, loss_fn) -> Optional[TrainingParts]:
    """``Slim.quant.name: binary`` -> the binarize hook."""
    quant = (cfg.get("Slim") or {}).get("quant")
    if not quant or quant["name"] != "binary":
        return None
    return TrainingParts(hooks=[BinarizeHook(quant, cfg)])
