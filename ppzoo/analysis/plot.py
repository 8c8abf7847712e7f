"""Plots of :func:`ppzoo.analysis.report.analyze` results (matplotlib: extra ``plot``)."""
from typing import List

import numpy as np

__all__ = ["plot_tradeoffs", "plot_layers", "plot_profile"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plots need matplotlib: pip install 'ppzoo[plot]'") from None
    return plt


def plot_tradeoffs(results: List[dict], path: str) -> str:
    """Published ImageNet top-1 against MAdds and, when measured, against predictor latency,
    one colour per family. Models without a published top-1 are left out."""
    plt = _pyplot()
    from matplotlib import ticker

    points = [r for r in results if r["published_top1"] is not None]
    if not points:
        raise ValueError("none of these models has a published top-1 to plot")
    timed = all("latency" in r for r in points)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(12 if timed else 6.5, 4.8), squeeze=False)
    families = sorted({r["family"] for r in points})
    colours = plt.get_cmap("tab10")
    panels = [("madds", "MAdds (M, batch 1)", lambda r: r["madds"] / 1e6)]
    if timed:
        lat = points[0]["latency"]
        panels.append(("latency", f"latency (ms, exported, batch {lat['batch_size']}, {lat['threads']} threads)",
                       lambda r: r["latency"]["predictor_p50_ms"]))
    for ax, (_, label, x_of) in zip(axes[0], panels):
        for i, family in enumerate(families):
            rows = sorted((r for r in points if r["family"] == family), key=x_of)
            ax.plot([x_of(r) for r in rows], [r["published_top1"] for r in rows], "o-", color=colours(i),
                    label=family)
            for r in rows:
                ax.annotate(r["model"].split("_x")[-1] if "_x" in r["model"] else r["model"], (x_of(r), r["published_top1"]),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # crowded on a short log axis
        ax.set_xlabel(label)
        ax.set_ylabel("published ImageNet top-1 (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_layers(result: dict, path: str) -> str:
    """MAdds (top) and MAC (bottom) of every operator of one model in execution order,
    coloured by kind, on linear scales, so that where the arithmetic is and where the
    memory traffic is can be compared at a glance."""
    plt = _pyplot()
    layers = [layer for layer in result["layers"] if layer["mac"] or layer["madds"]]
    kinds = list(dict.fromkeys(layer["kind"] for layer in layers))
    colours = plt.get_cmap("tab20")
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(max(8, len(layers) * 0.07), 6.4))
    x = range(len(layers))
    colour = [colours(kinds.index(layer["kind"]) % 20) for layer in layers]
    for ax, key, label in ((axes[0], "madds", "MAdds (M)"), (axes[1], "mac", "MAC (M elements)")):
        ax.bar(x, [layer[key] / 1e6 for layer in layers], width=0.8, color=colour)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i % 20)) for i in range(len(kinds))]
    axes[0].legend(handles, kinds, fontsize=8, ncol=min(len(kinds), 6))
    axes[1].set_xlabel("operator (execution order)")
    axes[0].set_title(f"{result['model']} at {'x'.join(map(str, result['input_size'][1:]))}: "
                      f"{result['madds'] / 1e6:.1f} M MAdds, {result['mac'] / 1e6:.1f} M MAC")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_profile(results: List[dict], path: str) -> str:
    """One panel per model (``analyze(..., profile=True)``): the exported predictor's share
    of time per operator group next to the group's share of MAdds and of MAC."""
    plt = _pyplot()
    rows = [r for r in results if "groups" in r.get("deployed", {})]
    if not rows:
        raise ValueError("the profile plot needs --profile results")
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 3.2 * len(rows)), squeeze=False)
    for ax, r in zip(axes[:, 0], rows):
        groups = r["deployed"]["groups"]
        x = np.arange(len(groups))
        for i, (key, label) in enumerate((("time_share", "predictor time"), ("madds_share", "MAdds"),
                                          ("mac_share", "MAC"))):
            ax.bar(x + (i - 1) * 0.27, [100 * g[key] for g in groups], width=0.27, label=label)
        ax.set_xticks(x)
        ax.set_xticklabels([g["group"] for g in groups], fontsize=8)
        ax.set_ylabel("% of model")
        lat = r["deployed"]["latency_ms"]["float32"]
        ax.set_title(f"{r['model']}: batch {r['deployed']['roofline']['batch_size']}, {lat:.1f} ms, "
                     f"{100 * r['deployed']['roofline']['peak_share']:.0f} % of fp32 GEMM peak", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
