"""Product quantization (PQ) of ``Linear`` and 1x1-conv weights.

Jegou, Douze and Schmid, "Product quantization for nearest neighbor search", TPAMI 2011
(Sec. II.B); applied to network weights by Wu et al., "Quantized Convolutional Neural
Networks for Mobile Devices", arXiv 1512.06473, Sec. 3.1 (Eq. 3-4): the input dimension of
a layer's weight is split into M sub-spaces of width d; in each, the weight sub-vectors of
all output units are clustered by k-means into K centroids (K <= 256), so a layer is stored
as uint8 codes [M, outputs] plus float32 codebooks [M, K, d]. The codebooks minimise the
weight error; with calibration images (``data``) they are then refined to minimise the error
of the layer's outputs instead, the error correction of Wu et al., Sec. 3.3 (:func:`pq_refine`).

The quantized model stays a plain model with dense weights equal to ``codebook[codes]``;
those weights are frozen (``trainable = False``) so that fine-tuning trains the rest (biases,
batch norms, other layers) and the weights stay on their codebooks. :func:`save_pq` writes the
compact file (codes, codebooks and the other tensors), :func:`load_pq` reads it back to a
dense state dict.
"""
import os
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import paddle.nn as nn

from ...utils.fileio import atomic_write
from ..base import add_pass
from .decompose import PASS_NAME, get_layer, run_with_hooks, select_layers
from .factorize import NotFactorizable, conv_geometry

__all__ = ["product_quantize", "pq_encode", "pq_decode", "pq_refine", "pq_response_error", "input_moments", "pq_bytes",
           "save_pq", "load_pq", "freeze_quantized", "PQLayerReport", "PQReport", "PQ_SUFFIX"]

PQ_SUFFIX = ".pq.npz"
_SEP = "::"


@dataclass
class PQLayerReport:
    layer: str
    subspaces: int  # M
    subvector: int  # d
    codebook: int  # K used (at most the number of output units)
    dense_bytes: int
    pq_bytes: int
    error: float  # relative Frobenius error of the weight
    # with calibration images: relative error of the outputs on them, after k-means -> after correction
    response_error: Optional[List[float]] = None


@dataclass
class PQReport:
    method: str = "pq"
    layers: List[PQLayerReport] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"method": self.method, "layers": [asdict(r) for r in self.layers], "skipped": list(self.skipped)}


def _takes(layer: nn.Layer) -> Optional[str]:
    """None when PQ takes the layer, else why not."""
    if isinstance(layer, nn.Linear):
        return None
    if isinstance(layer, nn.Conv2D):
        if tuple(layer._kernel_size) != (1, 1):
            return f"{'x'.join(map(str, layer._kernel_size))} conv (pq takes Linear and 1x1 convs)"
        if layer._in_channels == layer._groups:
            return "depthwise conv: one weight per output channel, nothing to split into sub-vectors"
        return None
    return f"{type(layer).__name__} (pq takes Linear and 1x1 Conv2D)"


def _matrix(layer: nn.Layer) -> np.ndarray:
    """The weight as [outputs, input width]: a row per output unit."""
    w = layer.weight.numpy()
    return w.T if isinstance(layer, nn.Linear) else w.reshape(w.shape[0], -1)


def _from_matrix(matrix: np.ndarray, shape: Sequence[int], linear: bool) -> np.ndarray:
    return np.ascontiguousarray(matrix.T if linear else matrix.reshape(shape), dtype="float32")


def pq_bytes(rows: int, width: int, subvector: int, codebook: int) -> int:
    """Bytes of the codes (uint8) and codebooks (float32) of a [rows, width] weight."""
    m = width // subvector
    return m * rows + m * min(codebook, rows) * subvector * 4


def pq_encode(matrix: np.ndarray, subvector: int, codebook: int = 256, seed: int = 0, max_iter: int = 100):
    """k-means per sub-space of a [rows, width] matrix: ``codes`` uint8 [M, rows] and
    ``codebooks`` float32 [M, K, d] with M = width / d and K = min(codebook, rows)."""
    from sklearn.cluster import KMeans

    rows, width = matrix.shape
    if width % subvector:
        raise ValueError(f"sub-vector width {subvector} does not divide the input width {width}")
    if not 1 <= codebook <= 256:
        raise ValueError(f"codebook size must be in [1, 256] (uint8 codes), got {codebook}")
    k = min(codebook, rows)
    m = width // subvector
    codes = np.empty([m, rows], dtype="uint8")
    books = np.empty([m, k, subvector], dtype="float32")
    for i in range(m):
        vectors = np.asarray(matrix[:, i * subvector:(i + 1) * subvector], dtype="float64")
        with warnings.catch_warnings():  # fewer distinct sub-vectors than K: duplicate centroids, harmless
            warnings.filterwarnings("ignore", message="Number of distinct clusters")
            km = KMeans(n_clusters=k, n_init=1, max_iter=max_iter, random_state=seed + i).fit(vectors)
        codes[i] = km.labels_
        books[i] = km.cluster_centers_
    return codes, books


def pq_decode(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """The [rows, M * d] matrix the codes stand for."""
    m = codes.shape[0]
    return np.concatenate([codebooks[i][codes[i]] for i in range(m)], axis=1)


def pq_response_error(matrix: np.ndarray, approx: np.ndarray, grams: Sequence[np.ndarray]) -> float:
    """Relative error of the outputs, sqrt(E||x (W - W')||^2 / E||x W||^2), from the inputs'
    second moments: ``grams`` holds one [width, width] matrix per group of rows (one for a
    Linear or an ungrouped conv)."""
    rows = matrix.shape[0] // len(grams)
    num = den = 0.0
    for g, gram in enumerate(grams):
        w, delta = matrix[g * rows:(g + 1) * rows], (matrix - approx)[g * rows:(g + 1) * rows]
        num += float(np.einsum("ji,ik,jk->", delta, gram, delta))
        den += float(np.einsum("ji,ik,jk->", w, gram, w))
    return float(np.sqrt(max(num, 0.0) / den)) if den > 0 else 0.0


def pq_refine(matrix: np.ndarray, codes: np.ndarray, codebooks: np.ndarray, grams: Sequence[np.ndarray],
              sweeps: int = 2, lloyd: int = 2, ridge: float = 1.0):
    """Error correction of a product-quantized weight (Wu et al., arXiv 1512.06473, Sec. 3.3):
    codes and codebooks that minimise the error of the layer's outputs on calibration inputs,
    ``E ||x (W - W')||^2 = tr((W - W') G (W - W')^T)`` with G the inputs' second moment, instead
    of the weight error. The inputs are the unquantized model's (Wu et al. also feed each layer
    the quantized layers before it, to stop the error accumulating; not done here).

    Block coordinate descent from the k-means solution: for one sub-space at a time, with the
    others fixed, the objective is a k-means in the metric G_mm of targets shifted by the
    other sub-spaces' errors (t_j = w_j + G_mm^-1 z_j, z_j the cross terms), solved by ``lloyd``
    Lloyd iterations (assignment in that metric, then the closed-form centroids); ``sweeps``
    passes over all sub-spaces. Every step minimises the (ridged) objective exactly in its
    variables, so that objective never rises; the unridged output error usually falls with it
    but is not guaranteed to. Grouped 1x1 convs have one G per group of output units (``grams``).

    Args:
        matrix (np.ndarray): the weight [rows, width] (a row per output unit).
        codes, codebooks: :func:`pq_encode`'s result ([M, rows] uint8, [M, K, d]).
        grams (list of np.ndarray): [width, width] input second moments, one per group of rows.
        sweeps (int): passes over the sub-spaces. Default: 2.
        lloyd (int): Lloyd iterations per sub-space and pass. Default: 2.
        ridge (float): G + ridge * mean(diag G) * I is the metric: the weight error's share of
            the objective, which keeps directions the calibration inputs do not span (fewer
            images than a Linear's width, inputs that never vary) near the k-means weights.
            Default: 1.0. Measured on the CIFAR-10 AlexNet's fc6 (2304 inputs; d 4, K 256; 512
            calibration images, one sweep), the output error on 512 other images: 0.275 with
            k-means, 0.172 / 0.136 / 0.115 corrected at ridge 0.01 / 0.1 / 1.0 (on the
            calibration images themselves: 0.071 / 0.081 / 0.098).

    Returns:
        (codes, codebooks), same shapes and dtypes.
    """
    if ridge < 0:
        raise ValueError(f"pq_refine: ridge must be >= 0, got {ridge}")
    w = np.asarray(matrix, dtype="float64")
    rows, width = w.shape
    m, k, d = codebooks.shape
    groups = len(grams)
    per = rows // groups
    grams = [np.asarray(gram, dtype="float64") for gram in grams]
    grams = [gram + np.eye(width) * (ridge * max(np.trace(gram) / width, 1e-12)) for gram in grams]
    codes, books = codes.copy(), codebooks.astype("float64")
    approx = pq_decode(codes, books)
    delta = w - approx
    h = np.concatenate([delta[g * per:(g + 1) * per] @ grams[g] for g in range(groups)])  # rows of delta G
    for _ in range(sweeps):
        for i in range(m):
            cols = slice(i * d, (i + 1) * d)
            blocks = [gram[cols, cols] for gram in grams]  # the sub-space's metric
            z = np.empty([rows, d])
            t = np.empty([rows, d])
            for g in range(groups):
                r = slice(g * per, (g + 1) * per)
                z[r] = h[r, cols] - delta[r, cols] @ grams[g][cols, cols]
                t[r] = w[r, cols] + z[r] @ np.linalg.pinv(blocks[g], hermitian=True)
            book, code = books[i], codes[i].astype("int64")
            for _ in range(lloyd):
                cost = np.empty([rows, k])
                for g in range(groups):  # (t - c)^T G (t - c) up to a constant per row
                    r = slice(g * per, (g + 1) * per)
                    cg = book @ blocks[g]
                    cost[r] = (cg * book).sum(1)[None] - 2 * t[r] @ cg.T
                code = cost.argmin(1)
                a, b = np.zeros([k, d, d]), np.zeros([k, d])  # c = (sum_j G_j)^-1 sum_j G_j t_j, rows coded c
                for g in range(groups):
                    r = slice(g * per, (g + 1) * per)
                    a += np.bincount(code[r], minlength=k)[:, None, None] * blocks[g]
                    sums = np.zeros([k, d])
                    np.add.at(sums, code[r], t[r])
                    b += sums @ blocks[g]  # blocks are symmetric
                used = np.flatnonzero(a[:, 0, 0] > 0)  # an empty cluster keeps its centroid
                book[used] = (np.linalg.pinv(a[used], hermitian=True) @ b[used][..., None])[..., 0]
            new = book[code]
            change = (w[:, cols] - new) - delta[:, cols]
            delta[:, cols] += change
            for g in range(groups):
                r = slice(g * per, (g + 1) * per)
                h[r] += change[r] @ grams[g][cols, :]
            books[i], codes[i] = book, code.astype("uint8")
    return codes, books.astype("float32")


def input_moments(model: nn.Layer, names: Sequence[str], images: np.ndarray, batch_size: int = 64) -> dict:
    """Uncentred second moments of the inputs of the Linear / 1x1-conv layers ``names`` on
    ``images`` (float32 NCHW), in eval mode, as the layers see them (a conv's input padded and
    sampled at its stride): ``{name: [G per group]}``, each [width, width] float64."""
    acc = {}

    def seen(name, layer, x):
        groups = 1
        if isinstance(layer, nn.Linear):
            x = x.reshape(-1, x.shape[-1])
        else:
            pad = [int(p) for p in layer._updated_padding]
            pad = (pad[0], pad[0], pad[1], pad[1]) if len(pad) == 2 else tuple(pad)
            if any(pad):
                x = np.pad(x, [(0, 0), (0, 0), pad[:2], pad[2:]])
            x = x[:, :, ::layer._stride[0], ::layer._stride[1]]
            x = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
            groups = int(layer._groups)
        per = x.shape[1] // groups
        grams = [x[:, g * per:(g + 1) * per].T @ x[:, g * per:(g + 1) * per] for g in range(groups)]
        s = acc.setdefault(name, {"grams": [np.zeros_like(gram) for gram in grams], "rows": 0})
        for total, gram in zip(s["grams"], grams):
            total += gram
        s["rows"] += x.shape[0]

    run_with_hooks(model, names, images, seen, inputs=True, batch_size=batch_size)
    return {n: [g / s["rows"] for g in s["grams"]] for n, s in acc.items()}


def _recover(matrix: np.ndarray, subvector: int):
    """Codes and codebooks of a weight that lies on its codebooks (distinct sub-vectors)."""
    rows, width = matrix.shape
    codes, books = [], []
    for i in range(width // subvector):
        book, code = np.unique(matrix[:, i * subvector:(i + 1) * subvector], axis=0, return_inverse=True)
        if len(book) > 256:
            return None
        codes.append(code.reshape(-1).astype("uint8"))
        books.append(book)
    k = max(len(b) for b in books)  # pad the smaller codebooks: one [M, K, d] array
    books = [np.concatenate([b, np.zeros([k - len(b), subvector], b.dtype)]) for b in books]
    return np.stack(codes), np.stack(books).astype("float32")


def product_quantize(model: nn.Layer, layers: Union[str, Sequence[str], None] = "auto",
                     subvector: Optional[int] = None, subspaces: Optional[int] = None, codebook: int = 256,
                     seed: int = 0, arch: Optional[dict] = None, where: str = "Slim.lowrank", log=None,
                     data: Optional[np.ndarray] = None) -> PQReport:
    """Product-quantize the weights of ``model``'s Linear and 1x1-conv layers in place.

    Args:
        model (nn.Layer): the model.
        layers (str | list of str): name patterns, or ``"auto"``: every Linear and 1x1 conv
            whose PQ form is smaller than its float32 weight. Default: "auto".
        subvector (int, optional): sub-vector width d. Default: 4 (unless ``subspaces``).
        subspaces (int, optional): number of sub-spaces M instead (d = width / M per layer).
        codebook (int): centroids per sub-space K, 2..256. Default: 256.
        seed (int): k-means seed. Default: 0.
        arch (dict, optional): the model's ``Arch`` section (see ``decompose``).
        log (callable, optional): called with one line per decision.
        data (np.ndarray, optional): calibration images (float32 NCHW): the codebooks are
            then error-corrected on the layers' inputs (:func:`pq_refine`). Default: None.
    """
    if subvector is not None and subspaces is not None:
        raise ValueError(f"'{where}': give subvector (d) or subspaces (M) for pq, not both")
    for key, value in (("subvector", subvector), ("subspaces", subspaces)):
        if value is not None and value < 1:
            raise ValueError(f"'{where}.{key}' must be >= 1, got {value}")
    if not 2 <= codebook <= 256:
        raise ValueError(f"'{where}.codebook' must be in [2, 256] (codes are uint8), got {codebook}")
    auto = layers in (None, "auto")
    if isinstance(layers, str) and not auto:
        layers = [layers]
    names = [n for n, l in model.named_sublayers() if isinstance(l, (nn.Linear, nn.Conv2D))] if auto else \
        select_layers(model, layers, f"{where}.layers")
    report, say = PQReport(), log or (lambda line: None)
    moments = {}
    if data is not None:  # one pass of the unquantized model
        correct = []
        for n in names:
            layer = get_layer(model, n)
            if _takes(layer) is not None:
                continue
            if isinstance(layer, nn.Conv2D):
                try:
                    conv_geometry(layer)
                except NotFactorizable as e:
                    say(f"{n}: no error correction ({e})")
                    continue
            correct.append(n)
        moments = input_moments(model, correct, data)
    for name in names:
        layer = get_layer(model, name)
        reason = _takes(layer)
        if reason is None:
            matrix = _matrix(layer)
            rows, width = matrix.shape
            if subspaces is not None:
                key, value, fits = "subspaces", subspaces, width % subspaces == 0
                d = width // subspaces
            else:
                d = subvector or 4
                key, value, fits = "subvector", d, width % d == 0
            if not fits:
                reason = f"{key} {value} does not divide the input width {width} of layer '{name}'"
                if not auto:
                    raise ValueError(f"'{where}.{key}': {reason}")
            else:
                dense, small = rows * width * 4, pq_bytes(rows, width, d, codebook)
                if small >= dense:
                    reason = f"PQ would not be smaller ({small:,} vs {dense:,} bytes with {rows} output units)"
        if reason is not None:
            if not auto or _takes(layer) is None:
                report.skipped.append({"layer": name, "reason": reason})
                say(f"{name}: kept ({reason})")
            continue
        codes, books = pq_encode(matrix, d, codebook, seed)
        response = None
        if name in moments:
            before = pq_response_error(matrix, pq_decode(codes, books), moments[name])
            codes, books = pq_refine(matrix, codes, books, moments[name])
            response = [before, pq_response_error(matrix, pq_decode(codes, books), moments[name])]
        approx = pq_decode(codes, books)
        layer.weight.set_value(_from_matrix(approx, layer.weight.shape, isinstance(layer, nn.Linear)))
        layer.weight.trainable = False
        norm = float(np.linalg.norm(matrix))
        err = float(np.linalg.norm(matrix - approx)) / norm if norm else 0.0
        entry = PQLayerReport(name, width // d, d, books.shape[1], dense, small, err, response)
        report.layers.append(entry)
        say(f"{name}: pq M={entry.subspaces} d={d} K={entry.codebook}, {dense:,} -> {small:,} bytes, "
            f"weight error {err:.4f}" + (f", output error {response[0]:.4f} -> {response[1]:.4f} corrected"
                                         if response else ""))
    if not auto and not report.layers and report.skipped:
        first = report.skipped[0]
        raise ValueError(f"'{where}.layers': pq can quantize none of the layers the patterns pick "
                         f"(first: '{first['layer']}': {first['reason']})")
    if report.layers and (arch is not None or getattr(model, "_ppzoo_arch", None) is not None):
        add_pass(model, PASS_NAME, {"method": "pq", "layers": [{"layer": r.layer, "subvector": r.subvector,
                                                               "codebook": r.codebook} for r in report.layers]}, arch)
    return report


def freeze_quantized(model: nn.Layer, record: dict) -> nn.Layer:
    """The structural side of a recorded pq pass: its weights are not trained any more."""
    for entry in record.get("layers", []):
        try:
            layer = get_layer(model, entry["layer"])
        except ValueError:
            raise ValueError(f"lowrank pass (pq): the architecture file names layer '{entry['layer']}', which "
                             f"{type(model).__name__} does not have") from None
        layer.weight.trainable = False
    return model


def _pq_entries(model: nn.Layer) -> Dict[str, dict]:
    record = getattr(model, "_ppzoo_arch", None) or {}
    return {e["layer"]: e for p in record.get("passes", []) if p.get("pass") == PASS_NAME and p.get("method") == "pq"
            for e in p.get("layers", [])}


def save_pq(model: nn.Layer, path: str) -> int:
    """Write the compact form of a product-quantized model (``.pq.npz``): uint8 codes and
    float32 codebooks for every quantized weight, every other tensor as it is. Returns the
    file's size in bytes."""
    entries = _pq_entries(model)
    if not entries:
        raise ValueError(f"{type(model).__name__} carries no pq pass: run product_quantize first")
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    arrays = OrderedDict()
    for name, entry in entries.items():
        layer = get_layer(model, name)
        key = f"{name}.weight"
        found = _recover(_matrix(layer), entry["subvector"])
        if found is None or found[1].shape[1] > entry["codebook"]:
            raise ValueError(f"the weight of '{name}' no longer lies on its {entry['codebook']}-entry codebooks "
                             "(was it trained after pq without its freeze?)")
        codes, books = found
        arrays[key + _SEP + "codes"], arrays[key + _SEP + "codebooks"] = codes, books
        arrays[key + _SEP + "shape"] = np.asarray(layer.weight.shape, dtype="int64")
        arrays[key + _SEP + "linear"] = np.asarray(isinstance(layer, nn.Linear))
        del state[key]
    for key, value in state.items():
        arrays[key] = value
    if not path.endswith(PQ_SUFFIX):
        path += PQ_SUFFIX

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    atomic_write(path, write)
    return os.path.getsize(path)


def load_pq(path: str) -> "OrderedDict[str, np.ndarray]":
    """The dense state dict a ``.pq.npz`` file stands for (load it with
    ``ppzoo.utils.weights.load_weights(model, state)`` into the model its ``.arch.json`` builds)."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read product-quantized weights {path}: {e}") from None
    state = OrderedDict()
    with data:
        keys = list(data.keys())
        for key in keys:
            if _SEP not in key:
                state[key] = data[key]
            elif key.endswith(_SEP + "codes"):
                base = key[:-len(_SEP + "codes")]
                matrix = pq_decode(data[key], data[base + _SEP + "codebooks"])
                state[base] = _from_matrix(matrix, data[base + _SEP + "shape"].tolist(),
                                           bool(data[base + _SEP + "linear"]))
    return state
