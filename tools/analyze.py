"""Params, MAdds, paddle.flops, memory access cost, activations and (with --latency)
measured latency of zoo models, per model or per layer.

    python tools/analyze.py 'mobilenet_v1*' --latency
    python tools/analyze.py mobilenet_v1_x1_0 --by-type                # MobileNetV1's Table 2
    python tools/analyze.py shufflenet_v1_g3_x1_0 --per-layer --format csv
    python tools/analyze.py 'mobilenet*' 'shufflenet_v1_g3*' --latency --plot tradeoff.png
    python tools/analyze.py alexnet alexnet_single --roofline --profile --batch-size 8
    python tools/analyze.py mobilenet_v1_x1_0 --latency --precision int8   # the int8 predictor

--precision bf16 runs the float32 export with oneDNN bfloat16 kernels; int8 quantizes the
(untrained) model per channel with 8 random calibration images: the time is that of the int8
kernels, the outputs mean nothing (quantize trained weights with tools/export.py --precision int8).
"""
import argparse
import sys

from _bootstrap import HELD  # noqa: E402  (first: sys.path, signals held while Paddle loads)
from ppzoo.utils.cli import check_minimums, run  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="names, PaddleClas names or shell patterns ('mobilenet_v1*')")
    parser.add_argument("--input-size", type=int, help="square input side (default: each model's own)")
    parser.add_argument("--small-input", action="store_true", help="build the models in small-input mode")
    parser.add_argument("--per-layer", action="store_true", help="also one row per operator")
    parser.add_argument("--by-type", action="store_true", help="also totals and shares per operator kind")
    parser.add_argument("--latency", action="store_true", help="measure dygraph and exported-predictor latency")
    parser.add_argument("--roofline", action="store_true", help="measure this machine's GEMM peak and memory bandwidth "
                        "in the predictor; per model: achieved GFLOP/s, share of peak, roofline bound, latency / bound")
    parser.add_argument("--profile", action="store_true", help="the exported predictor's time per operator type "
                        "(paddle.profiler), grouped next to the MAdds and MAC shares (implies the roofline figures)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch for --latency, --roofline and --profile")
    parser.add_argument("--threads", type=int, help="CPU threads for --latency (default: one per core)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs for --latency")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up runs for --latency")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                        help="the predictor's precision for --latency")
    parser.add_argument("--dtype", default="float32", help="element type for MAC in bytes (float32, float16, int8)")
    parser.add_argument("--format", default="table", choices=["table", "csv", "json", "markdown"])
    parser.add_argument("--plot", metavar="PNG", help="one model: per-layer MAC/MAdds bars; several: top-1 vs "
                        "MAdds (and vs latency with --latency); with --profile: time / MAdds / MAC share per "
                        "operator group and model")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()
    check_minimums(args, {"input_size": 1, "batch_size": 1, "threads": 1, "warmup": 0, "repeat": 1})

    from ppzoo.analysis import analyze, format_report, resolve_models

    names = resolve_models(args.models)
    int8_export = None
    if args.precision == "int8":
        import numpy as np

        from ppzoo.compress.quant import export_int8
        from ppzoo.deploy.export import default_preprocess

        def int8_export(model, folder, shape, arch):
            calib = np.random.default_rng(0).standard_normal([8, *shape]).astype("float32")
            settings = {"input_shape": shape, "name": type(model).__name__, "add_softmax": False,
                        "preprocess": default_preprocess(shape), "topk": 5, "class_names": None}
            export_int8(model, folder, calib, settings=settings, algo="abs_max", calib_batch=8,
                        threads=args.threads, arch=arch)
    results = analyze(names, args.input_size, latency=args.latency, batch_size=args.batch_size, threads=args.threads,
                      warmup=args.warmup, repeat=args.repeat, small_input=args.small_input, dtype=args.dtype,
                      roofline=args.roofline, profile=args.profile, precision=args.precision,
                      int8_export=int8_export)
    sys.stdout.write(format_report(results, args.format, per_layer=args.per_layer, by_kind=args.by_type))
    if args.plot:
        from ppzoo.analysis.plot import plot_layers, plot_profile, plot_tradeoffs

        if args.profile:
            path = plot_profile(results, args.plot)
        else:
            path = plot_layers(results[0], args.plot) if len(results) == 1 else plot_tradeoffs(results, args.plot)
        print(f"plot written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main, held_signals=HELD)
