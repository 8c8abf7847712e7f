"""Plots of :func:`ppzoo.analysis.report.analyze` results (matplotlib: extra ``plot``)."""
from typing import List

__all__ = ["plot_tradeoffs", "plot_layers"]


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
        ax.set_xlabel(label)
        ax.set_ylabel("published ImageNet top-1 (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_layers(result: dict, path: str) -> str:
    """MAC and MAdds of every operator of one model, in execution order (log scale)."""
    plt = _pyplot()
    layers = [layer for layer in result["layers"] if layer["mac"] or layer["madds"]]
    fig, ax = plt.subplots(figsize=(max(8, len(layers) * 0.09), 4.8))
    x = range(len(layers))
    ax.bar([i - 0.2 for i in x], [max(layer["madds"], 1) for layer in layers], width=0.4, label="MAdds")
    ax.bar([i + 0.2 for i in x], [max(layer["mac"], 1) for layer in layers], width=0.4, label="MAC (elements)")
    ax.set_yscale("log")
    ax.set_xlabel("operator (execution order)")
    ax.set_title(f"{result['model']} at {'x'.join(map(str, result['input_size'][1:]))}: per-operator MAdds and MAC")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
