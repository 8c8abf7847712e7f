"""ShuffleNetV2's guideline experiments (arXiv 1807.11164, Sec. 2, Tables 1-2) redone with
Paddle on this CPU, plus the cost of the channel shuffle inside a ShuffleNetV1 unit.

* G1 "equal channel width minimises MAC": 10 blocks of two 1x1 convs (c1 -> c2 -> c1) on
  a 56x56 map at (almost) equal MAdds for c1:c2 = 1:1, 1:2, 1:6, 1:12 (the paper's GPU
  widths c1 = 128, 90, 52, 36).
* G2 "excessive group convolution increases MAC": 10 1x1 group convs c -> c on 56x56 at
  equal MAdds for g = 1, 2, 4, 8 (c = 128, 180, 256, 360).
* Shuffle: a ShuffleNetV1 1x (g=3) stage 2 and stage 3 with and without the shuffle.

Each case reports our MAdds and MAC (``ppzoo.analysis.profile_model``) and the measured
latency of dygraph and of the exported ``paddle.inference`` program (oneDNN), timed
interleaved after a warm-up (``ppzoo.analysis.measure_latency``).

    python benchmarks/guidelines.py --json docs/results/guidelines.json
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402,F401  (first: it silences paddle's import-time warnings)
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402

from ppzoo.analysis import measure_latency, profile_model  # noqa: E402
from ppzoo.layers import ShuffleUnit  # noqa: E402

SIZE = 56
G1 = [("1:1", 128, 128), ("1:2", 90, 180), ("1:6", 52, 312), ("1:12", 36, 432)]  # ShuffleNetV2 Table 1 (GPU)
G2 = [(1, 128), (2, 180), (4, 256), (8, 360)]  # ShuffleNetV2 Table 2 (GPU)


def g1_net(c1, c2, blocks=10):
    layers = []
    for _ in range(blocks):
        layers += [nn.Conv2D(c1, c2, 1, bias_attr=False), nn.Conv2D(c2, c1, 1, bias_attr=False)]
    return nn.Sequential(*layers)


def g2_net(c, groups, blocks=10):
    return nn.Sequential(*[nn.Conv2D(c, c, 1, groups=groups, bias_attr=False) for _ in range(blocks)])


def shuffle_stage(in_c, out_c, repeats, shuffle):
    units = [ShuffleUnit(in_c, out_c, 2, 3, shuffle=shuffle)]
    units += [ShuffleUnit(out_c, out_c, 1, 3, shuffle=shuffle) for _ in range(repeats - 1)]
    return nn.Sequential(*units)


def measure(net, shape, args):
    stats = profile_model(net, shape)
    row = {"madds_m": stats.madds / 1e6, "mac_m": stats.mac / 1e6}
    for batch in args.batches:
        lat = measure_latency(net, shape, batch, args.threads, args.warmup, args.repeat)
        row[f"b{batch}_dygraph_ms"] = lat["dygraph_p50_ms"]
        row[f"b{batch}_predictor_ms"] = lat["predictor_p50_ms"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    paddle.set_device("cpu")
    paddle.seed(0)
    out = {"threads": args.threads, "repeat": args.repeat, "warmup": args.warmup, "paddle": paddle.__version__}
    lat_cols = [f"b{b}_{k}_ms" for b in args.batches for k in ("dygraph", "predictor")]
    print(f"{args.threads} threads, p50 of {args.repeat} interleaved runs (dygraph vs paddle.inference + oneDNN)")

    print("\nG1: 10 x (1x1 c1->c2, 1x1 c2->c1) on 56x56")
    out["g1"] = []
    for ratio, c1, c2 in G1:
        row = {"ratio": ratio, "c1": c1, "c2": c2, **measure(g1_net(c1, c2), [c1, SIZE, SIZE], args)}
        out["g1"].append(row)
        print(f"  {ratio:>5s} c1={c1:3d} c2={c2:3d}: MAdds {row['madds_m']:.0f} M, MAC {row['mac_m']:.2f} M, "
              + ", ".join(f"{c} {row[c]:.2f}" for c in lat_cols), flush=True)

    print("\nG2: 10 x 1x1 group conv c->c on 56x56")
    out["g2"] = []
    for groups, c in G2:
        row = {"groups": groups, "c": c, **measure(g2_net(c, groups), [c, SIZE, SIZE], args)}
        out["g2"].append(row)
        print(f"  g={groups} c={c:3d}: MAdds {row['madds_m']:.0f} M, MAC {row['mac_m']:.2f} M, "
              + ", ".join(f"{col} {row[col]:.2f}" for col in lat_cols), flush=True)

    print("\nchannel shuffle in ShuffleNetV1 1x (g=3) stages")
    out["shuffle"] = []
    for stage, (in_c, out_c, repeats, size) in {"stage2": (24, 240, 4, 56), "stage3": (240, 480, 8, 28)}.items():
        rows = {flag: measure(shuffle_stage(in_c, out_c, repeats, flag), [in_c, size, size], args)
                for flag in (True, False)}
        row = {"stage": stage, "with": rows[True], "without": rows[False]}
        row["share_pct"] = {c: 100 * (rows[True][c] - rows[False][c]) / rows[True][c] for c in lat_cols}
        out["shuffle"].append(row)
        print(f"  {stage}: MAC {rows[True]['mac_m']:.2f} M with / {rows[False]['mac_m']:.2f} M without; "
              + ", ".join(f"{c} {rows[True][c]:.2f} vs {rows[False][c]:.2f} ({row['share_pct'][c]:+.1f} %)"
                          for c in lat_cols), flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
