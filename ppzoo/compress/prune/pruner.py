"""Structured pruning: remove whole channels and rebuild a smaller dense model.

``prune_model(model, "fpgm", pruned_ratio=0.3)`` traces the model (:mod:`.graph`), groups
its channels (:mod:`.plan`), scores them (:mod:`.criteria`), chooses what to remove in every
dependency group and replaces each changed ``Conv2D`` / ``BatchNorm`` / ``Linear`` with a
smaller one holding the kept weights. The result is the same model class with new channel
counts; the pass is recorded (``add_pass(model, "prune", {"layers": ...})``), so
``save_compressed`` writes an ``.arch.json`` from which ``create_model`` rebuilds it.
"""
import copy
import fnmatch
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from ..base import add_pass, register_pass
from .criteria import atom_scores
from .graph import ChannelGraph, trace_channels
from .plan import Analysis, analyze, choose

__all__ = ["PrunePlan", "Pruner", "prune_model", "apply_plan", "make_inert", "plan_madds", "rebuild_pruned"]

PASS_NAME = "prune"


@dataclass
class PrunePlan:
    """Which atoms go: ``removed`` (bool per atom) and each group's requested and achieved ratio."""

    removed: np.ndarray
    requested: Dict[str, float] = field(default_factory=dict)
    achieved: Dict[str, float] = field(default_factory=dict)


def _sublayer(model: nn.Layer, name: str) -> nn.Layer:
    layer = model
    for part in name.split("."):
        layer = getattr(layer, part)
    return layer


def _replace(model: nn.Layer, name: str, new: nn.Layer) -> None:
    *parents, last = name.split(".")
    parent = _sublayer(model, ".".join(parents)) if parents else model
    setattr(parent, last, new)


def _new_layer(old: nn.Layer, spec: dict, where: str) -> nn.Layer:
    if type(old) is nn.Conv2D:
        return nn.Conv2D(spec["in_channels"], spec["out_channels"], old._kernel_size, stride=old._stride,
                         padding=old._padding, dilation=old._dilation, groups=spec["groups"],
                         padding_mode=old._padding_mode, bias_attr=False if old.bias is None else None, data_format=old._data_format)
    if type(old) in (nn.BatchNorm1D, nn.BatchNorm2D):
        return type(old)(spec["num_features"], momentum=old._momentum, epsilon=old._epsilon,
                         data_format=old._data_format)
    if type(old) is nn.Linear:
        return nn.Linear(spec["in_features"], spec["out_features"], bias_attr=False if old.bias is None else None)
    raise ValueError(f"cannot rebuild pruned layer '{where}': {type(old).__name__} (expected Conv2D, BatchNorm1D/2D "
                     "or Linear)")


def _sync_head(model: nn.Layer) -> None:
    fc = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(fc, nn.Linear) and hasattr(model, "num_features"):
        model.num_features = fc.weight.shape[0]


def rebuild_pruned(model: nn.Layer, record: dict) -> nn.Layer:
    """The ``prune`` pass on a fresh model: every recorded layer gets its new channel counts."""
    layers = record.get("layers")
    if not isinstance(layers, dict):
        raise ValueError("prune record holds no 'layers' mapping")
    for name, spec in layers.items():
        try:
            old = _sublayer(model, name)
        except AttributeError:
            raise ValueError(f"prune record names layer '{name}', which {type(model).__name__} does not have") from None
        _replace(model, name, _new_layer(old, spec, name))
    _sync_head(model)
    return model


register_pass(PASS_NAME, rebuild_pruned)


def _set(param, value: np.ndarray) -> None:
    param.set_value(value.astype(param.numpy().dtype))


def apply_plan(model: nn.Layer, analysis: Analysis, removed: np.ndarray) -> dict:
    """Cut ``model`` (in place) to the channels ``removed`` leaves; returns the record of new counts."""
    keep = ~removed
    layers = {}
    for node in analysis.graph.nodes:
        old = _sublayer(model, node.name)
        k_in, k_out = keep[node.in_atoms], keep[node.out_atoms]
        if k_in.all() and k_out.all():
            continue
        if node.kind == "conv":
            g = node.groups
            w = old.weight.numpy()
            o_per, i_per = w.shape[0] // g, len(k_in) // g
            parts = []
            for b in range(g):
                rows = np.flatnonzero(k_out[b * o_per:(b + 1) * o_per]) + b * o_per
                cols = np.flatnonzero(k_in[b * i_per:(b + 1) * i_per])
                parts.append(w[rows][:, cols])
            spec = {"in_channels": int(k_in.sum()), "out_channels": int(k_out.sum()), "groups": g}
            new = _new_layer(old, spec, node.name)
            _set(new.weight, np.concatenate(parts, 0))
            if old.bias is not None:
                _set(new.bias, old.bias.numpy()[k_out])
        elif node.kind == "depthwise":
            c = int(k_in.sum())
            spec = {"in_channels": c, "out_channels": c, "groups": c}
            new = _new_layer(old, spec, node.name)
            _set(new.weight, old.weight.numpy()[k_in])
            if old.bias is not None:
                _set(new.bias, old.bias.numpy()[k_in])
        elif node.kind == "norm":
            spec = {"num_features": int(k_in.sum())}
            new = _new_layer(old, spec, node.name)
            for p_new, p_old in ((new.weight, old.weight), (new.bias, old.bias), (new._mean, old._mean),
                                 (new._variance, old._variance)):
                _set(p_new, p_old.numpy()[k_in])
        else:  # linear
            rows = np.repeat(k_in, node.in_rep)
            spec = {"in_features": int(rows.sum()), "out_features": int(k_out.sum())}
            new = _new_layer(old, spec, node.name)
            _set(new.weight, old.weight.numpy()[rows][:, k_out])
            if old.bias is not None:
                _set(new.bias, old.bias.numpy()[k_out])
        new.train() if old.training else new.eval()
        _replace(model, node.name, new)
        layers[node.name] = spec
    _sync_head(model)
    return {"layers": layers}


@paddle.no_grad()
def make_inert(model: nn.Layer, graph: ChannelGraph, removed: np.ndarray) -> nn.Layer:
    """Zero (in place) the filters, biases and BN scale/shift that create the ``removed``
    channels: the unpruned model then computes what the pruned one does."""
    for node in graph.nodes:
        layer = _sublayer(model, node.name)
        if node.kind == "norm":
            r = removed[node.in_atoms]
            for p in (layer.weight, layer.bias):
                v = p.numpy()
                v[r] = 0
                _set(p, v)
        elif node.kind in ("conv", "linear"):
            r = removed[node.out_atoms]
            w = layer.weight.numpy()
            if node.kind == "conv":
                w[r] = 0
            else:
                w[:, r] = 0
            _set(layer.weight, w)
            if layer.bias is not None:
                b = layer.bias.numpy()
                b[r] = 0
                _set(layer.bias, b)
    return model


def plan_madds(graph: ChannelGraph, removed: Optional[np.ndarray] = None) -> int:
    """Multiply-adds of Conv2D and Linear layers (``ppzoo.analysis`` conventions, batch 1 at
    the traced input size) once ``removed`` channels are gone."""
    keep = np.ones(graph.n_atoms, bool) if removed is None else ~removed
    total = 0
    for node in graph.nodes:
        if node.kind == "norm":
            continue
        k_in, k_out = int(keep[node.in_atoms].sum()), int(keep[node.out_atoms].sum())
        if node.kind == "linear":
            total += k_in * node.in_rep * k_out
        else:
            kernel = int(np.prod(node.layer._kernel_size))
            per_group_in = 1 if node.kind == "depthwise" else k_in // node.groups
            total += k_out * node.spatial * per_group_in * kernel
    return total


class Pruner:
    """Trace once, score once, then plan any number of ratios (sensitivity analysis, targets).

    Args:
        model (nn.Layer): the trained model (not changed by planning).
        criterion (str): ``l1_norm``, ``l2_norm``, ``fpgm``, ``bn_scale`` or ``taylor``.
        input_size (sequence of int): C, H, W used to trace and count MAdds. Default: (3, 224, 224).
        calib (iterable, optional): (images, labels) batches for ``taylor``.
        skip (sequence of str): fnmatch patterns of group names never pruned. Default: none.
    """

    def __init__(self, model: nn.Layer, criterion: str, input_size: Sequence[int] = (3, 224, 224),
                 calib: Optional[Iterable] = None, skip: Sequence[str] = (), loss_fn: Optional[Callable] = None):
        self.model = model
        self.criterion = criterion
        self.graph = trace_channels(model, input_size)
        self.analysis = analyze(self.graph)
        self.atom_scores = atom_scores(model, self.graph, criterion, calib, loss_fn)
        self.skip = tuple(skip)
        self.groups = [g for g in self.analysis.groups
                       if len(g.units) and not any(fnmatch.fnmatchcase(g.name, p) for p in self.skip)]
        self.unit_scores = {g.name: np.array([np.nanmean(self.atom_scores[self.analysis.unit_atoms[u]])
                                              for u in g.units]) for g in self.groups}
        self._cache: Dict[tuple, np.ndarray] = {}
        self.base_madds = plan_madds(self.graph)

    @property
    def group_names(self) -> List[str]:
        return [g.name for g in self.groups]

    def max_ratio(self, name: str) -> float:
        """The largest share of the group's channels that can go (one channel stays per block)."""
        group = self.analysis.group(name)
        return len(self._choose(group, len(group.units))) / group.size

    def _choose(self, group, count: int) -> np.ndarray:
        key = (group.name, count)
        if key not in self._cache:
            self._cache[key] = group.units[choose(group, self.unit_scores[group.name], count)]
        return self._cache[key]

    def _atoms(self, units: np.ndarray) -> np.ndarray:
        return np.concatenate([self.analysis.unit_atoms[u] for u in units]) if len(units) else np.zeros(0, int)

    def plan(self, ratios: Dict[str, float], strict: bool = True) -> PrunePlan:
        """Remove ``ratios[group]`` of each group's channels (at most; groups missing keep all).
        With ``strict``, a ratio the constraints cannot reach is an error naming the group."""
        removed = np.zeros(self.graph.n_atoms, bool)
        plan = PrunePlan(removed)
        for group in self.groups:
            ratio = float(ratios.get(group.name, 0.0))
            if not 0.0 <= ratio < 1.0:
                raise ValueError(f"pruning ratio of '{group.name}' must be in [0, 1), got {ratio}")
            count = min(int(np.floor(ratio * group.size + 1e-9)), len(group.units))
            units = self._choose(group, count) if count else np.zeros(0, int)
            if strict and count and len(units) < count:
                most = self.max_ratio(group.name)
                if count > round(most * group.size):
                    raise ValueError(f"pruning ratio {ratio} would leave '{group.name}' without channels in a block "
                                     f"(groups must keep one channel each); the most it can take is {most:.3f}")
            removed[self._atoms(units)] = True
            plan.requested[group.name] = ratio
            plan.achieved[group.name] = len(units) / group.size
        return plan

    def uniform(self, ratio: float) -> PrunePlan:
        if not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
            raise ValueError(f"pruned_ratio must be in [0, 1), got {ratio!r}")
        return self.plan({g: ratio for g in self.group_names}, strict=False)

    def per_layer(self, ratios: Dict[str, float], default: float = 0.0) -> PrunePlan:
        """``ratios``: {fnmatch pattern of a group (its first layer's name) or of any layer it
        changes: ratio}; the first matching pattern wins."""
        out = {}
        for pattern in ratios:
            if not any(fnmatch.fnmatchcase(g.name, pattern) or any(fnmatch.fnmatchcase(l, pattern) for l in g.layers)
                       for g in self.groups):
                raise ValueError(f"Slim.prune.ratios: pattern '{pattern}' matches no prunable layer (groups: "
                                 f"{', '.join(self.group_names[:8])}{', ...' if len(self.groups) > 8 else ''})")
        for g in self.groups:
            out[g.name] = next((r for p, r in ratios.items() if fnmatch.fnmatchcase(g.name, p)
                                or any(fnmatch.fnmatchcase(l, p) for l in g.layers)), default)
        return self.plan(out)

    def global_threshold(self, ratio: float) -> PrunePlan:
        """Network slimming's rule (arXiv 1708.06519, Sec. 4): one threshold on the raw scores of
        all prunable units, at the ``ratio`` quantile; each group loses the units below it."""
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"pruned_ratio must be in [0, 1), got {ratio!r}")
        everything = np.concatenate([self.unit_scores[g] for g in self.group_names])
        threshold = np.quantile(everything, ratio) if ratio > 0 else -np.inf
        ratios = {g.name: min(float((self.unit_scores[g.name] < threshold).sum()) / g.size, 0.999)
                  for g in self.groups}
        return self.plan(ratios, strict=False)

    def madds(self, plan: PrunePlan) -> int:
        return plan_madds(self.graph, plan.removed)

    def uniform_for_madds(self, target: float) -> PrunePlan:
        """The smallest uniform ratio whose MAdds are at most ``target`` of the model's (bisection)."""
        self._check_target(target)
        lo, hi = 0.0, 0.99
        if self.madds(self.uniform(hi)) > target * self.base_madds:
            raise ValueError(f"target_madds {target} cannot be reached by uniform pruning (at most "
                             f"{self.madds(self.uniform(hi)) / self.base_madds:.3f} of the MAdds)")
        for _ in range(14):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.madds(self.uniform(mid)) > target * self.base_madds else (lo, mid)
        plan = self.uniform(hi)
        plan.requested = {"uniform": hi}
        return plan

    def _check_target(self, target: float) -> None:
        if not isinstance(target, (int, float)) or not 0.0 < target <= 1.0:
            raise ValueError(f"target_madds is the share of MAdds kept, in (0, 1]; got {target!r} (a target larger "
                             "than the model's MAdds cannot be met by pruning)")

    def apply(self, plan: PrunePlan, model: Optional[nn.Layer] = None, arch: Optional[dict] = None,
              copy_model: bool = True) -> nn.Layer:
        """The pruned model (a copy of the traced one unless ``copy_model=False``), with the
        ``prune`` pass recorded."""
        target = model if model is not None else self.model
        if copy_model:
            target = copy.deepcopy(target)
        record = apply_plan(target, self.analysis, plan.removed)
        record["criterion"] = self.criterion
        record["ratios"] = {k: round(v, 4) for k, v in plan.achieved.items() if v > 0}
        add_pass(target, PASS_NAME, record, arch=arch)
        return target


def prune_model(model: nn.Layer, criterion: str = "l1_norm", pruned_ratio: Optional[float] = None,
                ratios: Optional[Dict[str, float]] = None, target_madds: Optional[float] = None,
                arch: Optional[dict] = None, input_size: Sequence[int] = (3, 224, 224),
                calib: Optional[Iterable] = None, skip: Sequence[str] = ()) -> nn.Layer:
    """Prune ``model`` with one of: a uniform ``pruned_ratio``, per-layer ``ratios`` or a
    ``target_madds`` share reached by a uniform ratio (for the sensitivity-chosen target see
    :func:`ppzoo.compress.prune.sensitivity.sensitivity_plan`).

    Args:
        model (nn.Layer): trained model; not changed.
        criterion (str): importance criterion. Default: "l1_norm".
        pruned_ratio (float, optional): share of channels removed in every group, in [0, 1).
        ratios (dict, optional): {group or layer pattern: ratio}.
        target_madds (float, optional): share of MAdds to keep, in (0, 1].
        arch (dict, optional): the config's Arch section (needed for a model never compressed
            before, to save it with ``save_compressed``).
        input_size (sequence of int): traced input. Default: (3, 224, 224).
        calib (iterable, optional): calibration batches for ``taylor``.
        skip (sequence of str): group name patterns left unpruned.

    Returns:
        nn.Layer: the pruned copy.
    """
    given = [x is not None for x in (pruned_ratio, ratios, target_madds)]
    if sum(given) != 1:
        raise ValueError("give exactly one of pruned_ratio, ratios or target_madds")
    pruner = Pruner(model, criterion, input_size, calib, skip)
    if pruned_ratio is not None:
        plan = pruner.uniform(pruned_ratio)
    elif ratios is not None:
        plan = pruner.per_layer(ratios)
    else:
        plan = pruner.uniform_for_madds(target_madds)
    return pruner.apply(plan, arch=arch)
