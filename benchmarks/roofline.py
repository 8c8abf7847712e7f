"""Issue 16's table, before and after the slow-path fixes, in one run: every family's
model exported twice (the previous LRN and channel-shuffle forms, and the current ones),
all predictors timed round-robin, the roofline figures and the per-operator profile of
each, at batch 1 and 8. The same functions as ``tools/analyze.py --roofline --profile``.

    python benchmarks/roofline.py --json docs/results/roofline.json
    python benchmarks/roofline.py --quick        # batch 1 only, fewer runs
"""
import argparse
import contextlib
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
from ppzoo.analysis import profile_model  # noqa: E402
from ppzoo.analysis.roofline import PROTOCOL, deployed_figures  # noqa: E402
from ppzoo.layers import ChannelShuffle, LocalResponseNorm  # noqa: E402
from ppzoo.utils.runtime import set_cpu_threads  # noqa: E402

MODELS = ["mobilenet_v1_x1_0", "mobilenet_v2_x1_0", "alexnet_single", "alexnet", "shufflenet_v1_g3_x1_0"]


def _previous_shuffle(self, x):
    return F.channel_shuffle(x, self.groups)  # the fused op, also when exported (before issue 16)


@contextlib.contextmanager
def previous_forms():
    """The layer forwards as they were before issue 16: Paddle's LRN (pad3d + avg_pool3d +
    pow) and the fused channel_shuffle op in the exported program."""
    lrn, shuffle = LocalResponseNorm.forward, ChannelShuffle.forward
    LocalResponseNorm.forward, ChannelShuffle.forward = nn.LocalResponseNorm.forward, _previous_shuffle
    try:
        yield
    finally:
        LocalResponseNorm.forward, ChannelShuffle.forward = lrn, shuffle


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.batch_sizes, args.repeat, args.warmup = [1], 5, 2
    set_cpu_threads(args.threads)
    paddle.seed(0)
    entries = {}
    for name in MODELS:
        model = ppzoo.create_model(name)
        model.eval()
        shape = list(ppzoo.model_info(name).input_size)
        stats = profile_model(model, shape)
        entries[f"{name} before"] = (model, shape, stats, previous_forms)
        entries[f"{name} after"] = (model, shape, stats)
    out = {"protocol": PROTOCOL, "threads": args.threads, "paddle": paddle.__version__,
           "cpu": platform.processor() or platform.machine(), "limits": {}, "runs": {}}
    for batch in args.batch_sizes:  # peak and bandwidth timed in the same round-robin as the models
        figures = deployed_figures(entries, batch, args.threads, repeat=args.repeat, warmup=args.warmup)
        out["runs"][str(batch)] = figures["models"]
        out["limits"][str(batch)] = limits = figures["limits"]
        print(f"\nbatch {batch}: model | MAdds (M) | fp32 ms | GFLOP/s | share of fp32 GEMM | bound ms | "
              "latency/bound | bf16 ms")
        for key, e in figures["models"].items():
            r = e["roofline"]
            print(f"{key} | {entries[key][2].madds / 1e6:.0f} | {e['latency_ms']['float32']:.2f} | "
                  f"{r['achieved_gflops']:.0f} | {100 * r['peak_share']:.0f} % | {r['bound_ms']:.2f} | "
                  f"{r['latency_over_bound']:.1f} | {e['latency_ms'].get('bfloat16', float('nan')):.2f}")
        print(f"peak: {', '.join(f'{k} {v / 1e9:.0f} GFLOP/s' for k, v in limits['peak_flops'].items())}; "
              f"bandwidth {', '.join(f'{int(k) >> 20} MiB: {v / 1e9:.1f} GB/s' for k, v in limits['bandwidth'].items())}")
    if args.json:
        for run in out["runs"].values():  # keep the file readable: per-layer bounds only as totals
            for e in run.values():
                e["roofline"] = {k: v for k, v in e["roofline"].items() if k != "layers"}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"written to {args.json}")


if __name__ == "__main__":
    main()
