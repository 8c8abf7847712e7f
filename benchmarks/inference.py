"""Dygraph vs Paddle Inference latency, in one run, on the same input, for every family at 224.

For each model: eager (dygraph) eval under ``paddle.no_grad``, then the exported program
through ``paddle.inference`` with oneDNN on and off, at batch 1 and 8. The three ways of
running are timed interleaved (round-robin) after a warm-up; the table reports medians
(p50) and p90 in milliseconds, and the predictor's speed-up over dygraph from the same run.

    python benchmarks/inference.py                       # 2 threads, 30 runs, every family
    python benchmarks/inference.py --models mobilenet_v2_x1_0 --threads 1 --json out.json
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402  (first: it silences paddle's import-time warnings)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from ppzoo.analysis import time_interleaved  # noqa: E402
from ppzoo.deploy.export import export_model  # noqa: E402
from ppzoo.deploy.predictor import Predictor  # noqa: E402
from ppzoo.utils.runtime import set_cpu_threads  # noqa: E402

MODELS = ["alexnet", "mobilenet_v1_x1_0", "mobilenet_v2_x1_0", "shufflenet_v1_g3_x1_0"]


def bench_model(name, batches, threads, repeat, warmup, workdir):
    model = ppzoo.create_model(name)
    model.eval()
    shape = list(ppzoo.model_info(name).input_size)
    folder = os.path.join(workdir, name)
    export_model(model, folder, shape, name=name, verify=False)
    predictors = {"onednn": Predictor(folder, threads=threads, onednn=True),
                  "plain": Predictor(folder, threads=threads, onednn=False)}
    rows = []
    for batch_size in batches:
        x = np.random.default_rng(0).standard_normal([batch_size, *shape]).astype("float32")
        tensor = paddle.to_tensor(x)

        def dygraph():
            with paddle.no_grad():
                model(tensor)

        fns = {"dygraph": dygraph,
               "inference_onednn": lambda: predictors["onednn"].run(x),
               "inference_plain": lambda: predictors["plain"].run(x)}
        timings = time_interleaved(fns, repeat, warmup)
        row = {"model": name, "input": shape, "batch": batch_size, "threads": threads, "runs": repeat,
               "warmup": warmup}
        for key, t in timings.items():
            row[f"{key}_p50_ms"], row[f"{key}_p90_ms"] = t.median * 1e3, t.p90 * 1e3
        row["speedup_onednn"] = timings["dygraph"].median / timings["inference_onednn"].median
        row["speedup_plain"] = timings["dygraph"].median / timings["inference_plain"].median
        rows.append(row)
        print(f"{name:24s} b{batch_size:<2d} dygraph {row['dygraph_p50_ms']:7.1f} ms | inference oneDNN "
              f"{row['inference_onednn_p50_ms']:7.1f} ms ({row['speedup_onednn']:.2f}x) | inference plain "
              f"{row['inference_plain_p50_ms']:7.1f} ms ({row['speedup_plain']:.2f}x)", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    paddle.set_device("cpu")
    threads = set_cpu_threads(args.threads)  # dygraph uses the same thread count as the predictors
    print(f"paddle {paddle.__version__}, {threads} threads, p50 of {args.repeat} interleaved runs after "
          f"{args.warmup} warm-up rounds")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            rows += bench_model(name, args.batches, threads, args.repeat, args.warmup, workdir)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"paddle": paddle.__version__, "threads": threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
