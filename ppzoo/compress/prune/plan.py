"""From a channel graph to a choice of channels to remove.

* **Units**: atoms tied by residual adds and channel shuffles (union-find) are removed
  together; a unit holding a frozen atom is kept.
* **Groups**: units linked by a layer (they appear in the same conv/linear input or
  output) form a dependency group; each group is pruned with its own ratio, and named
  after the first layer that creates its channels.
* **Choice**: within a group, a 0/1 integer programme (``scipy.optimize.milp``, HiGHS)
  removes as many units as the ratio asks (never more), the least important first, under
  the constraints that every block of every grouped layer loses the same number of
  channels (so ``groups`` still divides) and keeps at least one. Residual and shuffle ties
  hold by construction (units), concat slices by the atom lists.
"""
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import csr_matrix

from .graph import ChannelGraph

__all__ = ["DependencyGroup", "Analysis", "analyze"]


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class DependencyGroup:
    """Channels pruned together under one ratio.

    ``units``: unit ids (rows of ``Analysis.unit_atoms``) that may be removed; ``frozen``:
    units it holds that may not; ``layers``: names of the conv/linear layers whose input or
    output channels it changes."""

    name: str
    units: np.ndarray
    frozen: np.ndarray
    layers: List[str]
    blocks: List[tuple]  # (layer, side, groups, counts [unit x block], channels per block)
    tensors: List[tuple]  # (counts [unit]: atoms of each unit in the tensor, channels of the tensor)

    @property
    def size(self) -> int:
        return len(self.units) + len(self.frozen)


@dataclass
class Analysis:
    graph: ChannelGraph
    unit_of: np.ndarray  # atom -> unit id
    unit_atoms: List[np.ndarray]
    groups: List[DependencyGroup]
    frozen_why: Dict[int, str]  # unit -> reason

    def group(self, name: str) -> DependencyGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)


def analyze(graph: ChannelGraph) -> Analysis:
    """Units, dependency groups and their constraints from a traced channel graph."""
    uf = _UnionFind(graph.n_atoms)
    for tie in graph.ties:
        for a in tie[1:]:
            uf.union(int(tie[0]), int(a))
    roots = np.array([uf.find(a) for a in range(graph.n_atoms)])
    _, unit_of = np.unique(roots, return_inverse=True)
    n_units = int(unit_of.max()) + 1 if graph.n_atoms else 0
    unit_atoms = [[] for _ in range(n_units)]
    for a, u in enumerate(unit_of):
        unit_atoms[u].append(a)
    unit_atoms = [np.array(a) for a in unit_atoms]
    frozen_why = {}
    for a, why in graph.frozen.items():
        frozen_why.setdefault(int(unit_of[a]), f"channel {a} of '{graph.source.get(a, '?')}' {why}")

    # units linked by a tensor (conv/linear input or output) belong to one group
    link = _UnionFind(n_units)
    for atoms in graph.tensors:
        units = np.unique(unit_of[atoms])
        for u in units[1:]:
            link.union(int(units[0]), int(u))
    group_root = np.array([link.find(u) for u in range(n_units)])
    order = {}  # group root -> first creating layer in execution order
    for node in graph.nodes:
        if node.kind in ("conv", "linear"):
            for u in np.unique(unit_of[node.out_atoms]):
                order.setdefault(int(group_root[u]), node.name)

    groups = []
    for root in dict.fromkeys(group_root[unit_of[np.concatenate([n.out_atoms for n in graph.nodes
                                                                 if n.kind in ("conv", "linear")])]]):
        members = np.flatnonzero(group_root == root)
        prunable = np.array([u for u in members if u not in frozen_why], dtype=int)
        frozen = np.array([u for u in members if u in frozen_why], dtype=int)
        index = {int(u): i for i, u in enumerate(prunable)}
        blocks = []
        for layer, side, atoms, g in graph.partitions:
            units = unit_of[atoms]
            if group_root[units[0]] != root:
                continue
            counts = np.zeros((len(prunable), g))
            for b, chunk in enumerate(np.split(units, g)):
                for u in chunk:
                    if int(u) in index:
                        counts[index[int(u)], b] += 1
            blocks.append((layer, side, g, counts, len(atoms) // g))
        tensors = []
        for atoms in graph.tensors:
            units = unit_of[atoms]
            if group_root[units[0]] != root:
                continue
            counts = np.zeros(len(prunable))
            for u in units:
                if int(u) in index:
                    counts[index[int(u)]] += 1
            tensors.append((counts, len(atoms)))
        layers = sorted({n.name for n in graph.nodes
                         if n.kind != "norm" and (np.isin(unit_of[n.in_atoms], members).any()
                                                  or np.isin(unit_of[n.out_atoms], members).any())},
                        key=[n.name for n in graph.nodes].index)
        groups.append(DependencyGroup(order.get(int(root), layers[0] if layers else "?"), prunable, frozen, layers,
                                      blocks, tensors))
    return Analysis(graph, unit_of, unit_atoms, groups, frozen_why)


def _constraints(group: DependencyGroup):
    """Equal loss per block of every grouped layer; at least one channel kept in every block
    and every conv/linear input and output (frozen channels count as kept)."""
    rows, lo, hi = [], [], []
    for _layer, _side, g, counts, block in group.blocks:
        for b in range(1, g):
            rows.append(counts[:, b] - counts[:, 0])
            lo.append(0)
            hi.append(0)
        for b in range(g):
            rows.append(counts[:, b])
            lo.append(0)
            hi.append(block - 1)
    for counts, size in group.tensors:
        rows.append(counts)
        lo.append(0)
        hi.append(size - 1)
    return rows, lo, hi


def choose(group: DependencyGroup, scores: np.ndarray, count: int, time_limit: float = 20.0) -> np.ndarray:
    """Indices (into ``group.units``) of at most ``count`` units to remove: the most that
    satisfy the constraints, then the least important (``scores``, one per unit)."""
    n = len(group.units)
    if count <= 0 or n == 0:
        return np.zeros(0, dtype=int)
    rows, lo, hi = _constraints(group)
    rows.append(np.ones(n))
    lo.append(0)
    hi.append(count)
    s = np.asarray(scores, dtype=float)
    s = (s - s.min()) / (np.ptp(s) + 1e-12)  # in [0, 1]
    c = -1.0 + s / (n + 1.0)  # one more unit always beats any importance saving
    res = milp(c, constraints=LinearConstraint(csr_matrix(np.array(rows)), lo, hi), integrality=np.ones(n),
               bounds=(0, 1), options={"time_limit": time_limit})
    if res.x is None:
        raise RuntimeError(f"pruning group '{group.name}': the integer programme found no solution ({res.message})")
    return np.flatnonzero(res.x > 0.5)
