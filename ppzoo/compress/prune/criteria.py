"""Importance of channels: which ones a pruner removes first (the lowest scores).

A channel's score is computed on the layer that creates it (its filter) or the BatchNorm
that follows that layer; a unit of tied channels (residual, shuffle) scores the mean of
its channels. Filter criteria are divided by their layer's mean so that the channels of
different layers tied into one unit weigh alike; ``bn_scale`` is kept raw, because network
slimming thresholds all gammas of the network at one global value.

* ``l1_norm``: sum |w| of the filter (Li et al., arXiv 1608.08710).
* ``l2_norm``: Euclidean norm of the filter.
* ``fpgm``: sum of distances from the filter to every other filter of its layer; filters
  near the geometric median are the most replaceable (He et al., arXiv 1811.00250, Eq. 6).
* ``bn_scale``: |gamma| of the BatchNorm after the layer (Liu et al., arXiv 1708.06519).
* ``taylor``: first-order Taylor estimate of the loss change when the channel is removed,
  (sum over its BN scale and shift, or its filter if there is no BN, of w * dL/dw)^2,
  averaged over calibration batches (Molchanov et al., arXiv 1906.10771, Eq. 8).
"""
from typing import Callable, Dict, Iterable, Optional

import numpy as np
import paddle.nn.functional as F

from .graph import ChannelGraph

__all__ = ["CRITERIA", "atom_scores"]

CRITERIA = ("l1_norm", "l2_norm", "fpgm", "bn_scale", "taylor")


def _filters(node) -> np.ndarray:
    w = node.layer.weight.numpy()
    return w.T.reshape(w.shape[1], -1) if node.kind == "linear" else w.reshape(w.shape[0], -1)


def _filter_scores(node, name: str) -> np.ndarray:
    f = _filters(node)
    if name == "l1_norm":
        return np.abs(f).sum(1)
    if name == "l2_norm":
        return np.sqrt((f * f).sum(1))
    sq = (f * f).sum(1)  # fpgm: sum_j ||f_i - f_j||, from the Gram matrix
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * f @ f.T, 0.0)
    return np.sqrt(d2).sum(1)


def _first_norms(graph: ChannelGraph) -> Dict[int, object]:
    out = {}
    for node in graph.nodes:
        if node.kind == "norm":
            for i, a in enumerate(node.in_atoms):
                out.setdefault(int(a), (node, i))
    return out


def atom_scores(model, graph: ChannelGraph, name: str, calib: Optional[Iterable] = None,
                loss_fn: Optional[Callable] = None) -> np.ndarray:
    """Score of every atom of ``graph`` under criterion ``name`` (NaN for atoms no layer
    creates, e.g. the input's).

    Args:
        model (nn.Layer): the traced model.
        graph (ChannelGraph): its channel graph.
        name (str): one of ``CRITERIA``.
        calib (iterable of (images, labels)): calibration batches, needed by ``taylor``.
        loss_fn (callable): ``loss_fn(logits, labels)``; default cross-entropy.
    """
    if name not in CRITERIA:
        raise ValueError(f"unknown pruning criterion '{name}'; valid: {', '.join(CRITERIA)}")
    scores = np.full(graph.n_atoms, np.nan)
    creators = [n for n in graph.nodes if n.kind in ("conv", "linear")]
    if name in ("l1_norm", "l2_norm", "fpgm"):
        for node in creators:
            s = _filter_scores(node, name)
            scores[node.out_atoms] = s / s.mean() if s.mean() > 0 else s
        return scores
    norms = _first_norms(graph)
    if name == "bn_scale":
        for node in creators:
            missing = [int(a) for a in node.out_atoms if int(a) not in norms and int(a) not in graph.frozen]
            if missing:
                raise ValueError(f"criterion bn_scale needs a BatchNorm after every pruned layer; '{node.name}' has "
                                 "none (use l1_norm, l2_norm, fpgm or taylor)")
            for a in node.out_atoms:
                if int(a) in norms:
                    bn, i = norms[int(a)]
                    scores[a] = abs(float(bn.layer.weight.numpy()[i]))
        return scores
    if calib is None:
        raise ValueError("criterion taylor needs calibration batches (Slim.prune.calib_batches > 0 and a loader)")
    loss_fn = loss_fn or (lambda logits, y: F.cross_entropy(logits, y.reshape([-1, 1]) if y.ndim == 1 else y))
    acc = np.zeros(graph.n_atoms)
    batches = 0
    was_training = model.training
    model.eval()  # BN statistics stay as trained; gradients still flow
    try:
        for images, labels in calib:
            model.clear_gradients()
            loss_fn(model(images), labels).backward()
            bn_terms = {}
            for node in graph.nodes:
                if node.kind == "norm" and node.layer.weight.grad is not None:
                    w, b = node.layer.weight, node.layer.bias
                    bn_terms[id(node)] = w.numpy() * w.grad.numpy() + b.numpy() * b.grad.numpy()
            for node in creators:
                bns = [norms.get(int(a)) for a in node.out_atoms]
                if all(b is not None and id(b[0]) in bn_terms for b in bns):
                    per = np.array([bn_terms[id(bn)][i] for bn, i in bns])
                else:
                    layer = node.layer
                    w, g = layer.weight.numpy(), layer.weight.grad.numpy()
                    prod = (w * g).T.reshape(w.shape[1], -1) if node.kind == "linear" else (w * g).reshape(w.shape[0], -1)
                    per = prod.sum(1)
                    if layer.bias is not None and layer.bias.grad is not None:
                        per = per + layer.bias.numpy() * layer.bias.grad.numpy()
                acc[node.out_atoms] += per ** 2
            batches += 1
    finally:
        model.clear_gradients()
        if was_training:
            model.train()
    if batches == 0:
        raise ValueError("criterion taylor got no calibration batch")
    for node in creators:
        s = acc[node.out_atoms] / batches
        scores[node.out_atoms] = s / s.mean() if s.mean() > 0 else s
    return scores
