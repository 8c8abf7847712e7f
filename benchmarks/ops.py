"""Measure the two building blocks the notes wrote as slow Python, against ours, in one run.

1. channel shuffle: ``ppzoo.layers.channel_shuffle`` (Paddle's fused kernel) vs the notes'
   reshape -> transpose -> reshape;
2. pointwise group convolution: one ``Conv2D(groups=g)`` vs the notes' Python loop of g
   convolutions over channel slices followed by a concat.

Both pairs run interleaved on the same tensors; the table reports medians and ratios.

    python benchmarks/ops.py                 # full run, about a minute on 2 cores
    python benchmarks/ops.py --quick         # smaller tensors, fewer repeats
    python benchmarks/ops.py --json out.json
"""
import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402,F401  (first: it silences paddle's import-time warnings)
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
from ppzoo.analysis import time_interleaved  # noqa: E402
from ppzoo.layers import ConvNormAct, channel_shuffle  # noqa: E402
from ppzoo.utils.runtime import set_cpu_threads  # noqa: E402


def reshape_transpose_shuffle(x, groups):
    n, c, h, w = x.shape
    x = paddle.reshape(x, [n, groups, c // groups, h, w])
    x = paddle.transpose(x, [0, 2, 1, 3, 4])
    return paddle.reshape(x, [n, c, h, w])


class LoopGroupConv(nn.Layer):
    """The notes' PointwiseGroupConv2d: one 1x1 conv per group, sliced and concatenated."""

    def __init__(self, in_channels, out_channels, groups):
        super().__init__()
        self.groups = groups
        self.convs = nn.LayerList([nn.Conv2D(in_channels // groups, out_channels // groups, 1, bias_attr=False)
                                   for _ in range(groups)])

    def forward(self, x):
        size = x.shape[1] // self.groups
        return paddle.concat([conv(x[:, i * size:(i + 1) * size]) for i, conv in enumerate(self.convs)], axis=1)


def bench_shuffle(shape, groups, repeat, warmup):
    x = paddle.rand(shape)
    t = time_interleaved({"ours": lambda: channel_shuffle(x, groups),
                          "reshape_transpose": lambda: reshape_transpose_shuffle(x, groups)}, repeat, warmup)
    return {"op": "channel_shuffle", "shape": shape, "groups": groups,
            "ours_ms": t["ours"].median * 1e3, "baseline_ms": t["reshape_transpose"].median * 1e3,
            "speedup": t["reshape_transpose"].median / t["ours"].median}


def bench_group_conv(shape, out_channels, groups, repeat, warmup, train):
    x = paddle.rand(shape)
    ours = ConvNormAct(shape[1], out_channels, 1, groups=groups, norm_layer=None, act_layer=None, bias=False)
    loop = LoopGroupConv(shape[1], out_channels, groups)
    if train:
        x.stop_gradient = False

        def step(layer):
            def run():
                layer(x).sum().backward()
                layer.clear_gradients()
                x.clear_gradient()
            return run
        fns = {"ours": step(ours), "loop": step(loop)}
    else:
        def infer(layer):
            def run():
                with paddle.no_grad():
                    layer(x)
            return run
        fns = {"ours": infer(ours), "loop": infer(loop)}
    t = time_interleaved(fns, repeat, warmup)
    return {"op": f"group_conv_1x1 ({'fwd+bwd' if train else 'fwd'})", "shape": shape, "groups": groups,
            "out_channels": out_channels, "ours_ms": t["ours"].median * 1e3, "baseline_ms": t["loop"].median * 1e3,
            "speedup": t["loop"].median / t["ours"].median}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 4 and 10 repeats (a smoke run)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per variant (default 30, quick 10)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (Paddle's default is 1)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    paddle.set_device("cpu")
    threads = set_cpu_threads(args.threads)
    batch = 4 if args.quick else 32
    repeat = args.repeat or (10 if args.quick else 30)
    warmup = 2 if args.quick else 5
    rows = [
        bench_shuffle([batch, 240, 28, 28], 3, repeat, warmup),  # ShuffleNetV1 1x g3, stage 2 bottleneck map
        bench_shuffle([batch, 384, 28, 28], 8, repeat, warmup),
        bench_shuffle([batch, 960, 7, 7], 3, repeat, warmup),
    ]
    for groups, channels in [(3, 240), (8, 384)]:
        for train in (False, True):
            rows.append(bench_group_conv([batch, channels, 28, 28], channels, groups, repeat, warmup, train))

    print(f"paddle {paddle.__version__}, {platform.machine()}, {threads} CPU thread(s); "
          f"medians of {repeat} interleaved runs")
    print(f"{'op':28s} {'input':>18s} {'g':>3s} {'ours ms':>9s} {'baseline ms':>12s} {'speed-up':>9s}")
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        print(f"{r['op']:28s} {shape:>18s} {r['groups']:3d} {r['ours_ms']:9.2f} {r['baseline_ms']:12.2f} "
              f"{r['speedup']:8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"paddle": paddle.__version__, "threads": threads, "repeat": repeat, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
