"""``analyze(names)``: the figures of ``tools/analyze.py`` for several models, and their
formatting as a table, CSV, JSON or Markdown."""
import csv
import difflib
import io
import json
import os
from typing import List, Optional, Sequence

from ..registry import create_model, list_models, model_info, resolve_name
from .latency import measure_latency
from .profile import DTYPE_BYTES, profile_model, summarize_by_kind

__all__ = ["resolve_models", "analyze", "format_report", "CONVENTION"]

CONVENTION = ("MAdds: multiply-adds of Conv2D + Linear at batch 1 (the papers' Mult-Adds); paddle.flops: Paddle's "
              "count, also charging BN, activations and pooling; MAC: memory access cost (ShuffleNetV2), elements "
              "read + written per operator, unfused; intensity: MAdds / MAC")


def resolve_models(patterns: Sequence[str]) -> List[str]:
    """Shell patterns -> the registry names they match; names are checked and kept as given
    (a PaddleClas name keeps PaddleClas's layout); in order, without repeats."""
    names = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            matched = list_models(pattern)
            if not matched:
                close = difflib.get_close_matches(pattern.replace("*", ""), list_models(), n=3, cutoff=0.5)
                raise ValueError(f"pattern '{pattern}' matches no model" +
                                 (f"; close names: {', '.join(close)}" if close else "; see ppzoo.list_models()"))
            names += matched
        elif _is_arch_file(pattern):
            names.append(pattern)  # a compressed model: its .arch.json
        else:
            names.append(resolve_name(pattern))
    return list(dict.fromkeys(names))


def _is_arch_file(name: str) -> bool:
    return name.endswith(".arch.json") and os.path.isfile(name)


def analyze(names: Sequence[str], input_size: Optional[int] = None, latency: bool = False, batch_size: int = 1,
            threads: Optional[int] = None, warmup: int = 5, repeat: int = 20, small_input: bool = False,
            dtype: str = "float32", roofline: bool = False, profile: bool = False, precision: str = "fp32",
            int8_export=None) -> List[dict]:
    """Profile every model (and time it with ``latency``, the predictor at ``precision``:
    see :func:`measure_latency`; for int8, ``int8_export(model, folder, input_size, arch)``);
    one dict per model with the totals, the per-kind summary and the per-layer list.
    ``roofline`` and ``profile`` add ``"deployed"`` (see
    :func:`ppzoo.analysis.roofline.deployed_figures`: measured peak and bandwidth, predictor
    latency timed round-robin over all models, roofline bound and, with ``profile``, the
    predictor's per-operator time) at ``batch_size``."""
    if input_size is not None and input_size < 1:
        raise ValueError(f"input_size must be >= 1, got {input_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or None: one per core), got {threads}")
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    results, built = [], {}
    for name in names:
        if _is_arch_file(name):  # the base model's facts; the structure (small_input included) from the file
            with open(name, encoding="utf-8") as f:
                info = model_info(json.load(f)["base"]["name"])
            model = create_model(name)
        else:
            info = model_info(name)
            model = create_model(name, **({"small_input": True} if small_input else {}))  # PaddleClas names: their layout
        shape = list(info.input_size) if input_size is None else [info.input_size[0], input_size, input_size]
        try:
            stats = profile_model(model, shape, dtype)
        except ValueError as e:
            raise ValueError(f"{name} at {shape[1]}x{shape[2]}: {e}") from None
        row = {"model": name, "family": info.family, "input_size": shape, "published_top1": info.top1,
               "published_params_m": info.params, "published_madds_m": info.madds, **stats.as_dict(),
               "by_kind": summarize_by_kind(stats)}
        if _is_arch_file(name):  # published figures are the base model's, not this one's
            row.update(published_top1=None, published_params_m=None, published_madds_m=None)
        if latency:
            arch = {"name": name, "class_num": 1000, **({"small_input": True} if small_input else {})}
            export = (lambda m, folder, size, arch=arch: int8_export(m, folder, size, arch)) if int8_export else None
            row["latency"] = measure_latency(model, shape, batch_size, threads, warmup, repeat, precision=precision,
                                             int8_export=export)
        if roofline or profile:
            built[name] = (model, shape, stats)
        results.append(row)
    if built:
        from .roofline import deployed_figures

        figures = deployed_figures(built, batch_size, threads, repeat=repeat, warmup=warmup, profile=profile)
        for row in results:
            row["deployed"] = dict(figures["models"][row["model"]], limits=figures["limits"],
                                   protocol=figures["protocol"], threads=figures["threads"], runs=figures["runs"])
    return results


def _model_columns(r: dict) -> List[tuple]:
    cols = [("model", r["model"]), ("input", "x".join(map(str, r["input_size"][1:]))),
            ("params (M)", f"{r['params'] / 1e6:.3f}"), ("MAdds (M)", f"{r['madds'] / 1e6:.2f}"),
            ("paddle.flops (M)", f"{r['paddle_flops'] / 1e6:.2f}"), ("MAC (M)", f"{r['mac'] / 1e6:.2f}"),
            (f"MAC (MB {r['dtype']})", f"{r['mac_bytes'] / 2 ** 20:.1f}"),
            ("activations (M)", f"{r['activations'] / 1e6:.2f}"), ("MAdds/MAC", f"{r['intensity']:.1f}")]
    if "latency" in r:
        lat = r["latency"]
        cols += [("dygraph p50 (ms)", f"{lat['dygraph_p50_ms']:.2f}"),
                 ("dygraph p90 (ms)", f"{lat['dygraph_p90_ms']:.2f}"),
                 ("predictor p50 (ms)", f"{lat['predictor_p50_ms']:.2f}"),
                 ("predictor p90 (ms)", f"{lat['predictor_p90_ms']:.2f}")]
    cols.append(("published top-1 (%)", "—" if r["published_top1"] is None else f"{r['published_top1']:.1f}"))
    return cols


def _layer_columns(layer: dict, total_madds: int) -> List[tuple]:
    share = 100.0 * layer["madds"] / total_madds if total_madds else 0.0
    return [("layer", layer["name"]), ("type", layer["type"]), ("kind", layer["kind"]),
            ("output", "x".join(map(str, layer["output_shape"][1:]))), ("params", str(layer["params"])),
            ("MAdds", str(layer["madds"])), ("paddle.flops", str(layer["paddle_flops"])), ("MAC", str(layer["mac"])),
            ("MAC (bytes)", str(layer["mac_bytes"])), ("activations", str(layer["activations"])),
            ("MAdds/MAC", f"{layer['intensity']:.2f}"), ("MAdds %", f"{share:.2f}")]


def _kind_columns(row: dict) -> List[tuple]:
    return [("kind", row["kind"]), ("layers", str(row["layers"])), ("MAdds (M)", f"{row['madds'] / 1e6:.2f}"),
            ("MAdds %", f"{row['madds_share']:.2f}"), ("weights %", f"{row['weights_share']:.2f}"),
            ("MAC %", f"{row['mac_share']:.2f}")]


def _render(rows: List[List[tuple]], fmt: str) -> str:
    if not rows:
        return ""
    header = [c[0] for c in rows[0]]
    body = [[c[1] for c in r] for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(body)
        return buf.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body]) + "\n"
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    fmt_row = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt_row(header), fmt_row(["-" * w for w in widths])] + [fmt_row(b) for b in body]) + "\n"


def _roofline_columns(r: dict) -> List[tuple]:
    d = r["deployed"]
    roof, lat = d["roofline"], d["latency_ms"]
    cols = [("model", r["model"]), ("batch", str(roof["batch_size"])), ("MAdds (M)", f"{r['madds'] / 1e6:.0f}"),
            ("fp32 ms", f"{lat['float32']:.2f}"), ("achieved GFLOP/s", f"{roof['achieved_gflops']:.0f}"),
            ("share of fp32 GEMM", f"{100 * roof['peak_share']:.0f} %"), ("bound ms", f"{roof['bound_ms']:.2f}"),
            ("latency / bound", f"{roof['latency_over_bound']:.1f}"),
            ("compute/memory-bound layers", f"{roof['compute_bound_layers']}/{roof['memory_bound_layers']}")]
    if "bfloat16" in lat:
        cols += [("bf16 ms", f"{lat['bfloat16']:.2f}"), ("share of bf16 GEMM", f"{100 * d['bf16_peak_share']:.0f} %")]
    return cols


def _group_columns(g: dict) -> List[tuple]:
    return [("group", g["group"]), ("predictor ops per run", ", ".join(g["ops"]) or "—"), ("ms", f"{g['ms']:.2f}"),
            ("time %", f"{100 * g['time_share']:.1f}"), ("MAdds %", f"{100 * g['madds_share']:.1f}"),
            ("MAC %", f"{100 * g['mac_share']:.1f}")]


def _deployed_header(d: dict) -> str:
    lim = d["limits"]
    peaks = ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in lim["peak_flops"].items())
    return (f"protocol: {d['protocol']}\nmeasured: GEMM peak {peaks}; bandwidth "
            f"{', '.join(f'{v / 1e9:.1f}' for v in lim['bandwidth'].values())} GB/s at "
            f"{'/'.join(str(int(k) // 2 ** 20) for k in lim['bandwidth'])} MiB moved; "
            f"{d['threads']} threads; latency = median of {d['runs']} round-robin runs\n")


def format_report(results: List[dict], fmt: str = "table", per_layer: bool = False, by_kind: bool = False) -> str:
    """Render :func:`analyze`'s results. JSON always carries the per-layer lists."""
    if fmt not in ("table", "csv", "json", "markdown"):
        raise ValueError(f"format must be table, csv, json or markdown, got {fmt!r}")
    if fmt == "json":
        return json.dumps({"convention": CONVENTION, "models": results}, indent=2) + "\n"
    parts = []
    if fmt == "table":
        parts.append(CONVENTION + "\n")
        if results and "latency" in results[0]:
            lat = results[0]["latency"]
            parts.append(f"latency: batch {lat['batch_size']}, {lat['threads']} CPU threads, {lat['warmup']} warm-up "
                         f"rounds, p50/p90 of {lat['runs']} interleaved runs; predictor = paddle.inference with "
                         f"oneDNN {'on' if lat['onednn'] else 'off'}, {lat.get('precision', 'fp32')}\n")
    parts.append(_render([_model_columns(r) for r in results], fmt))
    deployed = [r for r in results if "deployed" in r]
    if deployed:
        parts.append(("" if fmt == "csv" else "\nroofline (exported predictor)\n" + _deployed_header(deployed[0]["deployed"])) +
                     _render([_roofline_columns(r) for r in deployed], fmt))
    for r in deployed:
        if "profile" in r["deployed"]:
            prof = r["deployed"]["profile"]
            parts.append(("" if fmt == "csv" else
                          f"\n{r['model']}: predictor time per operator group (batch {r['deployed']['roofline']['batch_size']}; "
                          f"profiled run {prof['profiled_ms']:.2f} ms, operators {prof['ops_ms']:.2f} ms, unprofiled "
                          f"{r['deployed']['latency_ms']['float32']:.2f} ms)\n") +
                         _render([_group_columns(g) for g in r["deployed"]["groups"]], fmt))
    for r in results:
        if by_kind:
            parts.append(("" if fmt == "csv" else f"\n{r['model']} by operator kind\n") +
                         _render([_kind_columns(k) for k in r["by_kind"]], fmt))
        if per_layer:
            parts.append(("" if fmt == "csv" else f"\n{r['model']} per layer\n") +
                         _render([_layer_columns(layer, r["madds"]) for layer in r["layers"]], fmt))
    return "".join(parts)

