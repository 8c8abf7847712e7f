"""Factorise the layers of a model: which layers, which ranks, and the record to rebuild it.

:func:`decompose` replaces the chosen ``Linear``/``Conv2D`` layers by
:class:`~ppzoo.compress.lowrank.factorize.Factorized` ones and notes the change on the model
as the ``lowrank`` pass, so that ``save_compressed`` writes an ``.arch.json`` from which
``ppzoo.create_model`` rebuilds the structure (:func:`rebuild`).

Layers are chosen by name patterns (``fnmatch``: ``"pre_logits.*"``, ``"features.3"``; a
pattern naming a container takes the layers inside it) or automatically (``"auto"``): every
layer the method takes, kept only where the factorised form needs fewer MAdds and, measured
with the Paddle Inference predictor at batch 1 and 8 on this CPU, runs at least
``min_speedup`` times faster than the original layer on its own input.

With calibration images (``data``), ``svd`` fits each layer's responses on them instead of
its weights (:func:`response_statistics`; ``factorize.SVD``): the statistics come from one
pass of the original model, so every layer is fitted to the responses of undecomposed
inputs.
"""
import fnmatch
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import paddle
import paddle.nn as nn

from ...analysis.profile import forward_once
from ...utils.timing import time_interleaved
from ..base import add_pass
from .factorize import METHODS, NotFactorizable
from .rank import energy_rank, evbmf_rank, ratio_rank

__all__ = ["decompose", "rebuild", "select_layers", "layer_shapes", "choose_ranks", "LayerReport", "LowRankReport",
           "get_layer", "set_layer", "response_statistics", "PASS_NAME"]

PASS_NAME = "lowrank"


@dataclass
class LayerReport:
    """What happened to one layer."""

    layer: str
    method: str
    ranks: List[int]
    params_before: int
    params_after: int
    madds_before: int
    madds_after: int
    error: Optional[float] = None  # relative error of the kernel the factors represent (data-aware: of the
    # responses on the calibration images)
    speedup: Optional[Dict[str, float]] = None  # measured (auto plan): {"batch1": x, "batch8": y}


@dataclass
class LowRankReport:
    """The layers a pass changed and those it left, each with the reason."""

    method: str
    layers: List[LayerReport] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)  # {"layer", "reason"}

    def as_dict(self) -> dict:
        return {"method": self.method, "layers": [asdict(r) for r in self.layers], "skipped": list(self.skipped)}


# ---------------------------------------------------------------------------- finding layers

def get_layer(model: nn.Layer, name: str) -> nn.Layer:
    layer = model
    for part in name.split("."):
        subs = layer._sub_layers
        if part not in subs:
            raise ValueError(f"{type(model).__name__} has no layer '{name}'")
        layer = subs[part]
    return layer


def set_layer(model: nn.Layer, name: str, new: nn.Layer) -> None:
    parent, _, last = name.rpartition(".")
    owner = get_layer(model, parent) if parent else model
    if last not in owner._sub_layers:
        raise ValueError(f"{type(model).__name__} has no layer '{name}'")
    setattr(owner, last, new)


def _weighted(model: nn.Layer) -> Dict[str, nn.Layer]:
    """``Linear`` and ``Conv2D`` layers by name, in definition order."""
    return {n: l for n, l in model.named_sublayers() if isinstance(l, (nn.Linear, nn.Conv2D))}


def select_layers(model: nn.Layer, patterns: Sequence[str], where: str = "layers") -> List[str]:
    """Names of the ``Linear``/``Conv2D`` layers the patterns pick (a pattern naming a
    container picks the layers inside it). A pattern that matches no layer is an error."""
    names = [n for n, _ in model.named_sublayers()]
    weighted = _weighted(model)
    chosen = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            examples = ", ".join(list(weighted)[:3] + list(weighted)[-1:])
            raise ValueError(f"'{where}': pattern {pattern!r} matches no layer of {type(model).__name__} "
                             f"(its Linear/Conv2D layers are named like {examples})")
        picked = [n for n in weighted if any(n == h or n.startswith(h + ".") for h in hits)]
        if not picked:
            raise ValueError(f"'{where}': pattern {pattern!r} matches {', '.join(hits[:3])}, which hold no Linear "
                             "or Conv2D layer")
        chosen += [n for n in picked if n not in chosen]
    return [n for n in weighted if n in chosen]  # model order


def layer_shapes(model: nn.Layer, input_size: Sequence[int]) -> Dict[str, tuple]:
    """``{name: (input shape, output shape)}`` of every Linear/Conv2D for one image of
    ``input_size`` (batch dimension dropped), from one forward pass in eval mode."""
    shapes, hooks = {}, []
    for name, layer in _weighted(model).items():
        def hook(layer, inputs, output, name=name):
            shapes[name] = (tuple(inputs[0].shape[1:]), tuple(output.shape[1:]))
        hooks.append(layer.register_forward_post_hook(hook))
    forward_once(model, input_size, hooks)
    return shapes


# ---------------------------------------------------------------------------- ranks

def choose_ranks(method: str, layer: nn.Layer, name: str, rank: Union[int, Sequence[int], None] = None,
                 ratio: Optional[float] = None, energy: Optional[float] = None, vbmf: bool = False,
                 where: str = "Slim.lowrank") -> List[int]:
    """The ranks of ``layer`` from exactly one of: ``rank`` (an int; ``[R1, R2]`` for
    tucker2), ``ratio`` (share of the layer's weights kept), ``energy`` (share of the
    squared singular values kept, per group, per mode for tucker2), ``vbmf`` (EVBMF on the
    same matrices, Kim et al.'s choice). Raises ValueError naming the key."""
    m = METHODS[method]
    given = [k for k, v in (("rank", rank), ("ratio", ratio), ("energy", energy), ("vbmf", vbmf or None))
             if v is not None]
    if len(given) != 1:
        raise ValueError(f"'{where}': give exactly one of rank, ratio, energy or vbmf for {method}"
                         + (f", got {', '.join(given)}" if given else ""))
    full = m.max_ranks(layer)
    if rank is not None:
        ranks = [rank] * m.n_ranks if isinstance(rank, int) else list(rank)
        if len(ranks) != m.n_ranks or not all(isinstance(r, int) and not isinstance(r, bool) for r in ranks):
            want = "an int or [R1, R2]" if m.n_ranks == 2 else "an int"
            raise ValueError(f"'{where}.rank' must be {want} for {method}, got {rank!r}")
        for r, top in zip(ranks, full):
            if not 1 <= r <= top:
                raise ValueError(f"'{where}.rank': {rank} is outside [1, {min(full) if m.n_ranks == 1 else full}] for "
                                 f"layer '{name}' ({_describe(layer)})")
        return ranks
    if ratio is not None:
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"'{where}.ratio' must be in (0, 1] (share of the layer's weights kept), got {ratio}")
        dense = int(np.prod(layer.weight.shape)) + (layer.bias.shape[0] if layer.bias is not None else 0)
        if m.n_ranks == 2:  # scale both ranks with the channel counts: R1 = R2 * C / N
            c, n = full

            def two(t):
                return [max(1, min(c, int(round(t * c / n)))), t]
            return two(ratio_rank(ratio, lambda t: m.params(layer, two(t)), dense, n))
        return [ratio_rank(ratio, lambda r: m.params(layer, [r]), dense, full[0])]
    if method == "cp":
        raise ValueError(f"'{where}': cp takes rank or ratio (a CP rank has no singular-value spectrum for "
                         f"{'energy' if energy is not None else 'vbmf'})")
    if energy is not None:
        if not 0.0 < energy <= 1.0:
            raise ValueError(f"'{where}.energy' must be in (0, 1] (share of the squared singular values kept), "
                             f"got {energy}")

        def pick(matrices):
            return max(energy_rank(np.linalg.svd(mat, compute_uv=False), energy) for mat in matrices)
    else:
        def pick(matrices):
            return max(1, max(evbmf_rank(mat) for mat in matrices))
    mats = m.matrices(layer)
    if m.n_ranks == 2:
        return [min(pick(mats[0]), full[0]), min(pick(mats[1]), full[1])]
    return [min(pick(mats), full[0])]


def _describe(layer: nn.Layer) -> str:
    if isinstance(layer, nn.Linear):
        return f"Linear {layer.weight.shape[0]} -> {layer.weight.shape[1]}"
    k = "x".join(str(v) for v in layer._kernel_size)
    groups = f", groups {layer._groups}" if layer._groups > 1 else ""
    return f"Conv2D {layer._in_channels} -> {layer._out_channels}, {k}{groups}"


def _params(layer: nn.Layer) -> int:
    return int(sum(int(np.prod(p.shape)) for p in layer.parameters()))


def _madds(layer: nn.Layer, in_shape, out_shape) -> int:
    if isinstance(layer, nn.Linear):
        return int(np.prod(in_shape[:-1], dtype=np.int64)) * int(np.prod(layer.weight.shape))
    return int(np.prod(out_shape)) * int(np.prod(layer.weight.shape[1:]))


# ---------------------------------------------------------------------------- measured latency

class _Probe(nn.Layer):
    """One layer on an NCHW batch (a Linear reads it flattened): what the predictor times."""

    def __init__(self, layer: nn.Layer, in_shape):
        super().__init__()
        self.layer, self.in_shape = layer, list(in_shape)

    def forward(self, x):
        return self.layer(x.reshape([-1, *self.in_shape]) if len(self.in_shape) != 3 else x)


def measure_speedup(layer: nn.Layer, factorized: nn.Layer, in_shape, batches=(1, 8), threads: int = 2,
                    repeat: int = 30) -> Dict[str, float]:
    """Median predictor time of ``layer`` over that of ``factorized`` on their input, per
    batch size, timed interleaved (one exported program each, oneDNN on)."""
    from ...deploy.export import export_model
    from ...deploy.predictor import Predictor

    shape = list(in_shape) if len(in_shape) == 3 else [int(np.prod(in_shape)), 1, 1]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        predictors = {}
        for key, net in (("original", layer), ("factorized", factorized)):
            folder = os.path.join(tmp, key)
            export_model(_Probe(net, in_shape), folder, shape, verify=False)
            predictors[key] = Predictor(folder, threads=threads)
        rng = np.random.default_rng(0)
        for b in batches:
            batch = rng.standard_normal([b, *shape]).astype("float32")
            t = time_interleaved({k: (lambda p=p: p.run(batch)) for k, p in predictors.items()}, repeat, 5)
            out[f"batch{b}"] = t["original"].median / t["factorized"].median
    return out


def run_with_hooks(model: nn.Layer, names: Sequence[str], images: np.ndarray, seen, inputs: bool = False,
                   batch_size: int = 64) -> None:
    """One eval-mode pass of ``model`` over ``images`` (float32 NCHW) calling
    ``seen(name, layer, array)`` with the output (or, ``inputs=True``, the input) of each
    layer in ``names`` as float64 numpy, batch by batch; the hooks are removed after."""
    def hook_for(name):
        if inputs:
            return lambda layer, args: seen(name, layer, args[0].numpy().astype("float64"))
        return lambda layer, args, output: seen(name, layer, output.numpy().astype("float64"))

    layers = [get_layer(model, n) for n in names]
    modes = [(layer, layer.training) for layer in model.sublayers(include_self=True)]
    handles = []
    try:
        for name, layer in zip(names, layers):
            register = layer.register_forward_pre_hook if inputs else layer.register_forward_post_hook
            handles.append(register(hook_for(name)))
        model.eval()
        with paddle.no_grad():
            for start in range(0, len(images), batch_size):
                model(paddle.to_tensor(images[start:start + batch_size]))
    finally:
        for handle in handles:
            handle.remove()
        for layer, training in modes:  # each sublayer's own mode back (a frozen BN stays in eval)
            layer.training = training


def response_statistics(model: nn.Layer, names: Sequence[str], images: np.ndarray, batch_size: int = 64) -> dict:
    """Mean and uncentred second moment of the outputs of the layers ``names`` (a Linear's
    features, a conv's channels over every pixel) on ``images`` (float32 NCHW), in eval
    mode: ``{name: {"mean": [out], "moment": [out, out], "rows": int}}`` (float64)."""
    sums = {}

    def seen(name, layer, y):  # rows of output features: a Linear's last axis, a conv's channels per pixel
        y = y.reshape(-1, y.shape[-1]) if isinstance(layer, nn.Linear) else \
            y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])
        s = sums.setdefault(name, {"sum": np.zeros(y.shape[1]), "moment": np.zeros((y.shape[1],) * 2), "rows": 0})
        s["sum"] += y.sum(0)
        s["moment"] += y.T @ y
        s["rows"] += y.shape[0]

    run_with_hooks(model, names, images, seen, batch_size=batch_size)
    return {n: {"mean": s["sum"] / s["rows"], "moment": s["moment"] / s["rows"], "rows": s["rows"]}
            for n, s in sums.items()}


# ---------------------------------------------------------------------------- the pass

def decompose(model: nn.Layer, method: str, layers: Union[str, Sequence[str], None] = "auto",
              rank: Union[int, Sequence[int], None] = None, ratio: Optional[float] = None,
              energy: Optional[float] = None, vbmf: bool = False, input_size: Sequence[int] = (3, 224, 224),
              min_speedup: float = 1.05, threads: int = 2, arch: Optional[dict] = None,
              where: str = "Slim.lowrank", log=None, data: Optional[np.ndarray] = None) -> LowRankReport:
    """Factorise layers of ``model`` in place and record the ``lowrank`` pass on it.

    Args:
        model (nn.Layer): the model (its weights are read).
        method (str): ``svd`` (Linear, 1x1 conv), ``spatial_svd``, ``tucker2`` or ``cp``
            (k x k convs).
        layers (str | list of str): name patterns, or ``"auto"`` (the layers where the
            factorised form is cheaper in MAdds and measured faster). Default: "auto".
        rank, ratio, energy, vbmf: how to choose ranks, exactly one (:func:`choose_ranks`).
        input_size (list of int): [C, H, W] for MAdds and the measured plan. Default: 3x224x224.
        min_speedup (float): the automatic plan keeps a layer measured at least this much
            faster at batch 1 and 8. Default: 1.05.
        threads (int): CPU threads of the measured plan. Default: 2.
        arch (dict, optional): the model's ``Arch`` section, needed to record the pass on a
            model that carries no architecture record yet.
        log (callable, optional): called with one line per decision.
        data (np.ndarray, optional): calibration images (float32 NCHW): ``svd`` then fits
            each layer's responses on them (Zhang et al., arXiv 1505.06798, Sec. 3.1) instead
            of its weights. Default: None (the weights).

    Returns:
        LowRankReport: per layer ranks, params, MAdds (closed forms), error, speed-up; and
        the layers left with the reason.
    """
    if method not in METHODS:
        raise ValueError(f"'{where}.name' must be one of {', '.join([*METHODS, 'pq'])}, got {method!r}")
    m = METHODS[method]
    auto = layers in (None, "auto")
    if isinstance(layers, str) and not auto:
        layers = [layers]
    names = list(_weighted(model)) if auto else select_layers(model, layers, f"{where}.layers")
    shapes = layer_shapes(model, input_size)
    report = LowRankReport(method)
    say = log or (lambda line: None)
    stats = None
    if data is not None:
        if method != "svd":
            raise ValueError(f"'{where}.calibration_images': the data-aware fit is for svd (Linear and 1x1 "
                             f"convs), not {method}")
        takes = []
        for name in names:
            try:
                m.geometry(get_layer(model, name))
                takes.append(name)
            except NotFactorizable:
                pass
        stats = response_statistics(model, takes, data)  # one pass of the undecomposed model
    for name in names:
        layer = get_layer(model, name)
        try:
            m.geometry(layer)
        except NotFactorizable as e:
            if not auto:
                report.skipped.append({"layer": name, "reason": str(e)})
                say(f"{name}: kept ({e})")
            continue
        if name not in shapes:
            report.skipped.append({"layer": name, "reason": "not run by the forward pass"})
            continue
        ranks = choose_ranks(method, layer, name, rank, ratio, energy, vbmf, where)
        in_shape, out_shape = shapes[name]
        before = (_params(layer), _madds(layer, in_shape, out_shape))
        after = (m.params(layer, ranks), m.madds(layer, ranks, in_shape, out_shape))
        speedup = None
        if auto:
            if after[1] >= before[1]:
                reason = f"not cheaper: {after[1]:,} MAdds factorised vs {before[1]:,} at ranks {ranks}"
                report.skipped.append({"layer": name, "reason": reason})
                say(f"{name}: kept ({reason})")
                continue
            speedup = measure_speedup(layer, m.build(layer, ranks), in_shape, threads=threads)
            if min(speedup.values()) < min_speedup:
                reason = (f"measured not faster: speed-up {speedup['batch1']:.2f}x at batch 1, "
                          f"{speedup['batch8']:.2f}x at batch 8 (< {min_speedup})")
                report.skipped.append({"layer": name, "reason": reason})
                say(f"{name}: kept ({reason})")
                continue
        new, err = m.factorize(layer, ranks, responses=stats[name]) if stats else m.factorize(layer, ranks)
        new.train(layer.training)
        set_layer(model, name, new)
        report.layers.append(LayerReport(name, method, ranks, before[0], after[0], before[1], after[1], err, speedup))
        say(f"{name}: {_describe(layer)} -> {method} ranks {ranks}, params {before[0]:,} -> {after[0]:,}, "
            f"MAdds {before[1]:,} -> {after[1]:,}, {'response' if stats else 'kernel'} error {err:.4f}"
            + (f", measured {speedup['batch1']:.2f}x / {speedup['batch8']:.2f}x" if speedup else ""))
    if not auto and not report.layers and report.skipped:
        first = report.skipped[0]
        raise ValueError(f"'{where}.layers': {method} can factorise none of the layers the patterns pick "
                         f"(first: '{first['layer']}': {first['reason']})")
    if report.layers and (arch is not None or getattr(model, "_ppzoo_arch", None) is not None):
        add_pass(model, PASS_NAME, {"method": method,
                                    "layers": [{"layer": r.layer, "ranks": r.ranks} for r in report.layers]}, arch)
    return report


def rebuild(model: nn.Layer, record: dict) -> nn.Layer:
    """Redo a recorded ``lowrank`` pass on a freshly built model (structure only)."""
    method = record.get("method")
    if method == "pq":
        from .pq import freeze_quantized

        return freeze_quantized(model, record)
    if method not in METHODS:
        raise ValueError(f"lowrank pass: unknown method {method!r} in the architecture file")
    m = METHODS[method]
    for entry in record.get("layers", []):
        name = entry.get("layer", "?")
        try:
            layer = get_layer(model, name)
        except ValueError:
            raise ValueError(f"lowrank pass: the architecture file factorises layer '{name}', which "
                             f"{type(model).__name__} does not have") from None
        set_layer(model, name, m.build(layer, entry["ranks"]))
    return model
