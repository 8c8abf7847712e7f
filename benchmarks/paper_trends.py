"""Four paper trends on real images: CIFAR-10 10k-image subset, same budget per arm, several seeds.

1. ShuffleNetV1 Table 3: channel shuffle on vs off (g = 8, where the paper's gap is largest).
2. MobileNetV1 Table 4: depthwise-separable vs full 3x3 convolutions.
3. SENet: SE-MobileNetV1 vs MobileNetV1 (accuracy), and SE's measured latency on this CPU.
4. Dynamic convolution (arXiv 1912.03458) vs static MobileNetV2 at the same width.

Every arm trains with configs/cifar10/<family>.yaml (SGD + momentum 0.9, cosine LR 0.1 with
a one-epoch warm-up, L2 5e-4, random crop + flip) for the same number of epochs on
train_10k_list.txt (1,000 images per class) and is tested on test_2k_list.txt. To fit a
shared 2-core CPU the arms are narrow; they use the small-input layout (3x3 stride-1 stem, 8x
downsampling to a 4x4 final map; ``--imagenet-layout`` keeps the 32x one, whose 1x1 final map
diverged at LR 0.1 in a first attempt). The dynamic arm anneals the
softmax temperature 30 -> 1 over the first min(10, epochs / 2) epochs (the paper: first 10
of 300), the hook the trainer adds for any model with ``DynamicConv2D`` layers. Seeds are interleaved (seed 0 of
every arm, then seed 1, ...) so a load change on the machine hits all arms alike.

    python benchmarks/paper_trends.py --epochs 3 --comparisons separable se --json docs/results/paper_trends.json
    python benchmarks/paper_trends.py --epochs 2 --comparisons shuffle dynamic --json docs/results/paper_trends.json
    python benchmarks/paper_trends.py --latency-only --json docs/results/paper_trends.json
    python benchmarks/paper_trends.py --render docs/results/paper_trends.json   # the docs' table

Each invocation adds its rows to --json (a row already there, same comparison, arm, seed,
epochs and layout, is not run again), so comparisons may use different budgets and several
invocations may share one file; both arms of a comparison always share theirs.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402,F401  (first: it silences paddle's import-time warnings)
from ppzoo.analysis import measure_latency, profile_model  # noqa: E402
from ppzoo.config import load_config  # noqa: E402
from ppzoo.engine import train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.environ.get("PPZOO_CIFAR10", os.path.join(ROOT, "..", "shared", "datasets", "cifar10"))
BATCH = 128  # the config's batch: its LR 0.1 is meant for it (batch 64 at LR 0.1 diverged)

# comparison: [(arm, family config, model, Arch options)]; the first arm is the paper's winner
COMPARISONS = {
    "shuffle": [("shuffle", "shufflenet_v1", "shufflenet_v1_g8_x0_5", {}),
                ("no shuffle", "shufflenet_v1", "shufflenet_v1_g8_x0_5", {"shuffle": False})],
    "separable": [("depthwise separable", "mobilenet_v1", "mobilenet_v1_x0_25", {}),
                  ("full conv", "mobilenet_v1", "mobilenet_v1_x0_25", {"full_conv": True})],
    "se": [("SE", "mobilenet_v1", "se_mobilenet_v1_x1_0", {"width": 0.25}),
           ("plain", "mobilenet_v1", "mobilenet_v1_x0_25", {})],
    "dynamic": [("dynamic K=4", "mobilenet_v2", "dy_mobilenet_v2_x0_35", {}),
                ("static", "mobilenet_v2", "mobilenet_v2_x0_35", {})],
}


def run_arm(family, model, options, seed, epochs, output, small_input, cpu_threads=0):
    overrides = [f"Global.cpu_threads={cpu_threads}", f"Arch.name={model}", f"Arch.small_input={small_input}",
                 *(f"Arch.{k}={v}" for k, v in options.items()),
                 f"Global.seed={seed}", f"Global.epochs={epochs}", f"Global.eval_interval={epochs}",
                 f"Global.save_interval={epochs}", f"Global.output_dir={output}", "Global.print_batch_step=50",
                 f"DataLoader.Train.sampler.batch_size={BATCH}",
                 f"DataLoader.Train.dataset.image_root={CIFAR}",
                 f"DataLoader.Train.dataset.cls_label_path={CIFAR}/train_10k_list.txt",
                 f"DataLoader.Eval.dataset.image_root={CIFAR}",
                 f"DataLoader.Eval.dataset.cls_label_path={CIFAR}/test_2k_list.txt",
                 f"DataLoader.Eval.dataset.class_names_path={CIFAR}/labels.txt"]
    cfg = load_config(os.path.join(ROOT, "configs", "cifar10", f"{family}.yaml"), overrides)
    start = time.perf_counter()  # a dynamic model's temperature annealing is a hook the trainer adds itself
    summary = train(cfg, config_path=f"configs/cifar10/{family}.yaml")
    return {"top1": summary["last"]["top1"], "wall_time_s": time.perf_counter() - start,
            "train_images_per_s": summary["train_images_per_s"]}


def latency_rows(repeat):
    """SE's cost on this CPU: plain vs SE model, batch 1, interleaved medians, 224 and 32 pixels."""
    rows = []
    for base, se, options in [("mobilenet_v1_x1_0", "se_mobilenet_v1_x1_0", {}),
                              ("shufflenet_v1_g3_x2_0", "se_shufflenet_v1_g3_x2_0", {})]:
        for size in (224, 32):
            row = {"size": size}
            for label, name in (("plain", base), ("se", se)):
                m = ppzoo.create_model(name, num_classes=10, **options)
                lat = measure_latency(m, (3, size, size), repeat=repeat, warmup=5)
                stats = profile_model(m, (3, size, size))
                row[label] = {"model": name, "params": stats.params, "madds": stats.madds, **lat}
            row["dygraph_ratio"] = row["se"]["dygraph_p50_ms"] / row["plain"]["dygraph_p50_ms"]
            row["predictor_ratio"] = row["se"]["predictor_p50_ms"] / row["plain"]["predictor_p50_ms"]
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("size", "dygraph_ratio", "predictor_ratio")}), flush=True)
    return rows


def row_key(r: dict) -> tuple:
    """What identifies a run: two rows with this key are the same run."""
    return r["comparison"], r["arm"], r["seed"], r["epochs"], r["small_input"]


def load_report(path) -> dict:
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {}


def save_report(report: dict, path) -> None:
    """Re-read the file and merge, so two invocations writing one --json keep each other's rows."""
    if not path:
        return
    on_disk = load_report(path)
    keys = {row_key(r) for r in report.get("results", [])}
    merged = dict(on_disk, **{k: report[k] for k in report.get("_set_here", ()) if k in report})
    merged["results"] = [r for r in on_disk.get("results", []) if row_key(r) not in keys]
    merged["results"] += report.get("results", [])
    merged["summary"] = summarize(merged["results"])
    merged.pop("_set_here", None)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(merged, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def summarize(results):
    """Mean and spread per comparison and arm; "se"/"plain" is the "separable" run of the same budget."""
    table = {}
    for r in results:
        layout = "small-input" if r["small_input"] else "imagenet-layout"
        key = f'{r["comparison"]} ({r["epochs"]} epochs, {layout})'
        table.setdefault(key, {}).setdefault(r["arm"], []).append(r["top1"])
        if r["comparison"] == "separable" and r["arm"] == "depthwise separable":
            table.setdefault(f'se ({r["epochs"]} epochs, {layout})', {}).setdefault("plain", []).append(r["top1"])
    out = {}
    for comp, arms in table.items():
        out[comp] = {arm: {"seeds": len(v), "mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                           "min": min(v), "max": max(v), "top1": v} for arm, v in arms.items()}
    return out


PAPER = {"shuffle": "ShuffleNetV1 Table 3 (g=8): shuffle lowers the error",
         "separable": "MobileNetV1 Table 4: separable close to full conv at ~1/8 of the MAdds",
         "se": "SENet: SE improves a lightweight network", "dynamic": "DY-conv: dynamic beats static at equal width"}


def render(path: str) -> None:
    """The docs' table: per comparison and arm, top-1 over the seeds, params and MAdds."""
    report = load_report(path)
    print("| comparison (paper's claim) | budget | arm | model | params | MAdds (M) | top-1 mean ± std (n) | "
          "range | difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, arms in report.get("summary", {}).items():
        comp = key.split(" ")[0]
        budget = key[len(comp) + 2:-1]
        winner, other = (spec[0] for spec in COMPARISONS[comp])
        for arm, family, model, options in COMPARISONS[comp]:
            if arm not in arms:
                continue
            s = arms[arm]
            small = "small-input" in budget
            stats = profile_model(ppzoo.create_model(model, num_classes=10, small_input=small, **options), (3, 32, 32))
            diff = ""
            if arm == winner and other in arms:
                d = s["mean"] - arms[other]["mean"]
                if min(s["seeds"], arms[other]["seeds"]) < 2:
                    diff = f"{d:+.2f} (one seed: no spread)"
                else:
                    spread = max(s["std"], arms[other]["std"])
                    diff = f"{d:+.2f} ({'beyond' if abs(d) > spread else 'within'} the larger std {spread:.2f})"
            opts = ", ".join(f"{k}={v}" for k, v in options.items())
            print(f"| {comp}: {PAPER[comp]} | {budget} | {arm} | `{model}`{f' ({opts})' if opts else ''} | "
                  f"{stats.params / 1e6:.3f} M | {stats.madds / 1e6:.1f} | {s['mean']:.2f} ± {s['std']:.2f} ({s['seeds']}) | "
                  f"{s['min']:.2f}-{s['max']:.2f} | {diff} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--comparisons", nargs="+", default=list(COMPARISONS), choices=list(COMPARISONS))
    parser.add_argument("--imagenet-layout", action="store_true",
                        help="keep the ImageNet stem and strides on 32x32 images (default: small-input)")
    parser.add_argument("--cpu-threads", type=int, default=0,
                        help="Paddle's CPU threads per run (0: the trainer's default, all cores); 1 when two benchmarks share 2 cores")
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--latency-repeat", type=int, default=20)
    parser.add_argument("--output", default="output/paper_trends")
    parser.add_argument("--json")
    parser.add_argument("--render", metavar="JSON", help="print the docs' table of a result file, then stop")
    args = parser.parse_args()
    if args.render:
        return render(args.render)
    report = load_report(args.json)
    if args.latency_only:
        report["se_latency"] = latency_rows(args.latency_repeat)
        report["_set_here"] = ["se_latency"]
    else:
        if not os.path.isdir(CIFAR):
            sys.exit(f"error: CIFAR-10 not found at {CIFAR} (set PPZOO_CIFAR10)")
        small_input = not args.imagenet_layout
        report.update({"batch_size": BATCH, "train_list": "train_10k_list.txt", "test_list": "test_2k_list.txt",
                       "_set_here": ["batch_size", "train_list", "test_list"]})
        report.setdefault("results", [])
        done = {row_key(r) for r in report["results"]}
        for seed in args.seeds:
            for comp in args.comparisons:
                for arm_spec in COMPARISONS[comp]:
                    row_comp, (arm, family, model, options) = comp, arm_spec
                    if comp == "se" and arm == "plain":
                        # the same model and budget as "depthwise separable": that run is stored once, under "separable"
                        row_comp, (arm, family, model, options) = "separable", COMPARISONS["separable"][0]
                    key = (row_comp, arm, seed, args.epochs, small_input)
                    if key in done:
                        continue
                    done.add(key)
                    out = os.path.join(args.output, f"{row_comp}_{arm.replace(' ', '_')}_e{args.epochs}_s{seed}")
                    row = {"comparison": row_comp, "arm": arm, "model": model, "options": options, "seed": seed,
                           "epochs": args.epochs, "small_input": small_input,
                           "anneal_epochs": min(10.0, args.epochs / 2) if row_comp == "dynamic" else None,
                           **run_arm(family, model, options, seed, args.epochs, out, small_input, args.cpu_threads)}
                    report["results"].append(row)
                    print(json.dumps(row), flush=True)
                    report["summary"] = summarize(report["results"])
                    save_report(report, args.json)
    save_report(report, args.json)
    for comp, arms in report.get("summary", {}).items():
        for arm, s in arms.items():
            print(f"{comp:10s} {arm:22s} top-1 {s['mean']:.2f} +- {s['std']:.2f} (n={s['seeds']}, "
                  f"{s['min']:.2f}..{s['max']:.2f})")


if __name__ == "__main__":
    main()
