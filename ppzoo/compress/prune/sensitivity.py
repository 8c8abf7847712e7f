"""Sensitivity analysis: prune each dependency group alone at several ratios, measure the
accuracy on held-out images, and choose per-group ratios that meet a MAdds target with the
least loss (the procedure of PaddleSlim's ``sensitive.py``: one loss threshold for all
groups, each group pruned as far as its curve stays under it, the threshold raised by
bisection until the target is met)."""
import json
from typing import Callable, Optional, Sequence

import numpy as np

from ...utils.fileio import atomic_write
from .pruner import Pruner, PrunePlan

__all__ = ["DEFAULT_RATIOS", "sensitivity", "sensitivity_plan", "save_sensitivity", "plot_sensitivity"]

DEFAULT_RATIOS = (0.2, 0.4, 0.6, 0.8)


def sensitivity(pruner: Pruner, evaluate: Callable, ratios: Sequence[float] = DEFAULT_RATIOS,
                log: Optional[Callable] = None) -> dict:
    """``{"baseline": top1, "ratios": [...], "groups": {name: {"top1": [...], "loss": [...], "madds": [...]}}}``.

    Args:
        pruner (Pruner): the traced, scored model.
        evaluate (callable): ``evaluate(model) -> top-1 (%)`` on held-out images.
        ratios (sequence of float): ratios tried per group, each in (0, 1). Default: 0.2 ... 0.8.
        log (callable, optional): receives one progress line per group.
    """
    ratios = [float(r) for r in ratios]
    if not ratios or any(not 0.0 < r < 1.0 for r in ratios):
        raise ValueError(f"sensitivity ratios must lie in (0, 1), got {ratios}")
    base = float(evaluate(pruner.model))
    out = {"baseline": base, "ratios": ratios, "groups": {}}
    for name in pruner.group_names:
        top1, madds, achieved = [], [], []
        for r in ratios:
            plan = pruner.plan({name: r}, strict=False)
            top1.append(float(evaluate(pruner.apply(plan, arch={"name": "_", "class_num": 0}))))
            madds.append(pruner.madds(plan))
            achieved.append(plan.achieved[name])
        loss = [(base - t) / base if base > 0 else 0.0 for t in top1]
        out["groups"][name] = {"top1": top1, "loss": loss, "madds": madds, "achieved": achieved}
        if log:
            log(f"sensitivity {name}: " + " ".join(f"{r:.1f}:{t:.1f}" for r, t in zip(ratios, top1)))
    return out


def _ratio_under(curve: dict, ratios: Sequence[float], threshold: float) -> float:
    """Largest ratio whose (linearly interpolated) loss stays <= threshold; losses are made
    monotone first (a deeper cut is never counted as safer than a shallower one)."""
    xs = [0.0] + list(ratios)
    ys = np.maximum.accumulate([0.0] + [max(v, 0.0) for v in curve["loss"]])
    best = 0.0
    for i in range(1, len(xs)):
        if ys[i] <= threshold:
            best = xs[i]
            continue
        if ys[i] > ys[i - 1]:
            best = xs[i - 1] + (xs[i] - xs[i - 1]) * (threshold - ys[i - 1]) / (ys[i] - ys[i - 1])
        break
    return float(min(best, 0.95))


def sensitivity_plan(pruner: Pruner, sens: dict, target_madds: float) -> PrunePlan:
    """Per-group ratios from the curves in ``sens`` that keep at most ``target_madds`` of the
    MAdds with the smallest common loss threshold."""
    pruner._check_target(target_madds)
    goal = target_madds * pruner.base_madds

    def plan_at(t):
        return pruner.plan({g: _ratio_under(sens["groups"][g], sens["ratios"], t) for g in sens["groups"]
                            if g in pruner.group_names}, strict=False)

    hi = 1.0
    if pruner.madds(plan_at(hi)) > goal:
        raise ValueError(f"target_madds {target_madds} is below what the sensitivity curves allow (the deepest "
                         f"cut keeps {pruner.madds(plan_at(hi)) / pruner.base_madds:.3f} of the MAdds); "
                         "add larger Slim.prune.sensitivity_ratios")
    lo = 0.0
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pruner.madds(plan_at(mid)) > goal else (lo, mid)
    plan = plan_at(hi)
    plan.requested = {"threshold": hi}
    return plan


def save_sensitivity(sens: dict, path: str) -> str:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(sens, f, indent=1)
            f.write("\n")

    atomic_write(path, write)
    return path


def plot_sensitivity(sens: dict, path: str, top: int = 12) -> str:
    """Top-1 against the pruned ratio, one line per group (the ``top`` most sensitive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted(sens["groups"].items(), key=lambda kv: -max(kv[1]["loss"]))[:top]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in groups:
        xs = curve.get("achieved", sens["ratios"])  # what the group constraints let go, <= the ratio asked
        ax.plot([0.0] + list(xs), [sens["baseline"]] + curve["top1"], marker="o", ms=3, label=name)
    ax.set_xlabel("share of the group's channels removed (achieved)")
    ax.set_ylabel("top-1 on held-out images (%)")
    ax.set_title(f"pruning sensitivity (the {len(groups)} most sensitive groups)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
