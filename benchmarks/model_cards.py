"""Write the measured table of every variant into docs/models/<family>.md.

For each registered model: params, MAdds and MAC (ppzoo.analysis), latency at batch 1 of
the exported program on this CPU (paddle.inference + oneDNN, p50 of interleaved runs
against dygraph), the published ImageNet top-1, and our CIFAR-10 10k-subset top-1 from
docs/results/cifar10.json when benchmarks/cifar10.py trained that model. The table goes
between the markers ``<!-- measured:start -->`` and ``<!-- measured:end -->``.

    python benchmarks/model_cards.py                  # all families, 2 threads
    python benchmarks/model_cards.py --families shufflenet_v1 --repeat 10
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402  (first: it silences paddle's import-time warnings)
import paddle  # noqa: E402

from ppzoo.analysis import measure_latency, profile_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ["alexnet", "mobilenet_v1", "mobilenet_v2", "shufflenet_v1", "squeezenet", "resnet"]
START, END = "<!-- measured:start -->", "<!-- measured:end -->"


def cifar_results() -> dict:
    path = os.path.join(ROOT, "docs", "results", "cifar10.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    return {r["model"]: (r["top1"], data["epochs"]) for r in data["rows"]}


def family_table(family, threads, repeat, warmup, cifar) -> str:
    names = [n for n in ppzoo.list_models() if ppzoo.model_info(n).family == family]
    lines = ["| model | input | params (M) | MAdds (M) | MAC (M) | dygraph b1 (ms) | predictor b1 (ms) | "
             "published top-1 (%) | CIFAR-10 10k top-1 (%) |", "|" + "---|" * 9]
    for name in names:
        info = ppzoo.model_info(name)
        model = ppzoo.create_model(name)
        stats = profile_model(model, info.input_size)
        lat = measure_latency(model, info.input_size, 1, threads, warmup, repeat)
        top1 = "—" if info.top1 is None else f"{info.top1:.1f}"
        c10 = f"{cifar[name][0]:.2f} ({cifar[name][1]} ep.)" if name in cifar else "—"
        lines.append(f"| {name} | {info.input_size[1]} | {stats.params / 1e6:.3f} | {stats.madds / 1e6:.2f} | "
                     f"{stats.mac / 1e6:.2f} | {lat['dygraph_p50_ms']:.2f} | {lat['predictor_p50_ms']:.2f} | "
                     f"{top1} | {c10} |")
        print(lines[-1], flush=True)
    note = (f"\nMeasured with `python benchmarks/model_cards.py` (paddle {paddle.__version__}, {threads} CPU "
            f"thread{'s' if threads > 1 else ''}, batch 1, p50 of {repeat} interleaved runs after {warmup} warm-up rounds; predictor = the "
            "exported model in paddle.inference with oneDNN). Latencies come from a shared 2-core machine: "
            "compare them within the table. MAC: memory access cost in elements (see docs/analysis.md). "
            "CIFAR-10: small-input mode, trained by `benchmarks/cifar10.py` on the 10k-image subset, tested on "
            "the 10k test images.\n")
    return "\n".join(lines) + "\n" + note


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="*", default=FAMILIES, choices=FAMILIES)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    paddle.set_device("cpu")
    cifar = cifar_results()
    for family in args.families:
        table = family_table(family, args.threads, args.repeat, args.warmup, cifar)
        path = os.path.join(ROOT, "docs", "models", f"{family}.md")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        block = f"{START}\n{table}{END}"
        if START in text:
            text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        else:
            text = text.rstrip() + f"\n\n## Measured on this CPU\n\n{block}\n"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"updated {path}")


if __name__ == "__main__":
    main()
