"""The compressed model zoo: each family's CIFAR-10 recipe (configs/compress/<family>_cifar10.yaml)
run by tools/compress.py from a model trained by our configs, against the uncompressed fp32
model; top-1 on test_2k, sizes, and predictor latency at 224x224 (batch 1 and 8, 2 threads,
every stage of a family timed interleaved in one run, medians).

The trained models come from (10k-image subset, small-input):

    python tools/train.py -c configs/cifar10/mobilenet_v1.yaml -o Arch.name=mobilenet_v1_x0_5 \
        -o Global.epochs=6 -o Global.output_dir=ARTIFACTS <the overrides of benchmarks/_cifar10.py>

Then:

    python benchmarks/compressed_zoo.py --artifacts ARTIFACTS --json docs/results/compressed_zoo.json

    python benchmarks/compressed_zoo.py --render docs/results/compressed_zoo*.json   # the docs' table

Each family's tools/compress.py run writes its report.md / report.json in
``--out/<arch>/compress/``; this script collects the rows.
"""
import argparse
import json
import os
import subprocess
import sys

from _cifar10 import ROOT, cifar10_overrides, find_cifar10

FAMILIES = {  # name -> (the trained model it compresses, its recipe in configs/compress/)
    "mobilenet_v1": ("mobilenet_v1_x0_5", "mobilenet_v1_cifar10.yaml"),
    "mobilenet_v1_fast": ("mobilenet_v1_x0_5", "mobilenet_v1_cifar10_fast.yaml"),
    "mobilenet_v2": ("mobilenet_v2_x0_5", "mobilenet_v2_cifar10.yaml"),
    "shufflenet_v1": ("shufflenet_v1_g3_x0_5", "shufflenet_v1_cifar10.yaml"),
}


def run_family(family, args, data):
    arch, recipe = FAMILIES[family]
    recipe = os.path.join("configs", "compress", recipe)
    weights = os.path.join(args.artifacts, arch, "best_model")
    out = os.path.join(args.out, family)  # one folder per recipe: two recipes may compress one model
    cmd = [sys.executable, "tools/compress.py", "-c", recipe, "-o", f"Global.pretrained_model={weights}",
           "-o", f"Global.output_dir={out}", "-o", f"Global.cpu_threads={args.threads}",
           *[a for o in cifar10_overrides(data) for a in ("-o", o)], "--latency-size", str(args.latency_size)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    with open(os.path.join(out, arch, "compress", "report.json")) as f:
        report = json.load(f)
    return {"family": family, "arch": arch, "recipe": recipe, "command": " ".join(cmd[1:]), "report": report}


def summary(row):
    stages = row["report"]["stages"]
    base, last = stages[0], stages[-1]
    return {"arch": row["arch"], "stages": [s["stage"] for s in stages], "top1_fp32": base["top1"],
            "top1_final": last["top1"], "top1_delta": last["top1"] - base["top1"],
            "file_share": last["file_bytes"] / base["file_bytes"], "madds_share": last["madds"] / base["madds"],
            "speedup_b1": base["latency_ms"]["batch1"] / last["latency_ms"]["batch1"],
            "speedup_b8": base["latency_ms"]["batch8"] / last["latency_ms"]["batch8"]}


def render(paths):
    """The "Compressed model zoo" table of docs/compression.md from result files."""
    print("| model | recipe | stages | top-1 fp32 -> final (points) | file share | MAdds share | "
          "speed-up b1 / b8 (224x224) |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        for row in json.load(open(path))["rows"].values():
            s = row["summary"]
            print(f"| {s['arch']} | `{row['recipe']}` | {' -> '.join(s['stages'][1:])} | {s['top1_fp32']:.2f} -> "
                  f"{s['top1_final']:.2f} ({s['top1_delta']:+.2f}) | {100 * s['file_share']:.1f} % | "
                  f"{100 * s['madds_share']:.1f} % | {s['speedup_b1']:.2f}x / {s['speedup_b8']:.2f}x |")


def main():
    if sys.argv[1:2] == ["--render"]:
        return render(sys.argv[2:]) or 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES),
                        help="recipes of FAMILIES (configs/compress/)")
    parser.add_argument("--artifacts", default="/work/artifacts/cifar10", help="ARTIFACTS/<arch>/best_model.pdparams")
    parser.add_argument("--data", default=None, help="the CIFAR-10 folder (default: ../shared/datasets/cifar10)")
    parser.add_argument("--out", default=os.path.join(ROOT, "output", "compressed_zoo"))
    parser.add_argument("--latency-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="collect the rows here (merged with the file's other families)")
    args = parser.parse_args()
    data = find_cifar10(args.data)
    results = {"rows": {}}
    if args.json and os.path.exists(args.json):
        with open(args.json) as f:
            results = json.load(f)
    for family in args.families:
        arch = FAMILIES[family][0]
        if not os.path.isfile(os.path.join(args.artifacts, arch, "best_model.pdparams")):
            print(f"{family}: skipped, no {args.artifacts}/{arch}/best_model.pdparams (train it first)")
            continue
        row = run_family(family, args, data)
        row["summary"] = summary(row)
        results["rows"][family] = row
        s = row["summary"]
        print(f"{arch}: top-1 {s['top1_fp32']:.2f} -> {s['top1_final']:.2f} ({s['top1_delta']:+.2f}), file "
              f"{100 * s['file_share']:.1f} %, MAdds {100 * s['madds_share']:.1f} %, batch 1 {s['speedup_b1']:.2f}x, "
              f"batch 8 {s['speedup_b8']:.2f}x", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
