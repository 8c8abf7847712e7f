"""The main job as a user runs it, over several seeds: small-input mode on vs off.

Runs ``python tools/train.py -c configs/shufflenet.yaml -o Global.seed=S
-o Global.output_dir=ROOT/<mode>_s<S> [-o Arch.small_input=...]`` once per (seed, mode), one
fresh process each, the modes alternated so machine noise hits both alike; then reads each
run's ``metrics.json`` and reports the best validation top-1, wall time and train images/s:
per run, and mean, min and max per mode. A run whose ``metrics.json`` already shows every
epoch is read, not repeated (so an interrupted sweep continues).

    python benchmarks/main_job.py --json docs/results/main_job.json
    python benchmarks/main_job.py --seeds 0 1 2 3 4 --modes on --root /tmp/main_job
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/shufflenet.yaml"
MODES = {"off": "Arch.small_input=False", "on": "Arch.small_input=True"}


def run_dir(root: str, mode: str, seed: int) -> str:
    return os.path.join(root, f"main_{mode}_s{seed}")


def finished(out: str, epochs: int):
    """The metrics of a run that reached ``epochs``, else None."""
    path = os.path.join(out, "shufflenet_v1_g3_x1_0", "metrics.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        metrics = json.load(f)
    return metrics if metrics["epochs"] == epochs else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--modes", nargs="*", default=["off", "on"], choices=list(MODES))
    parser.add_argument("--root", default="output/bench_main_job", help="one output folder per run below this")
    parser.add_argument("--json")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from ppzoo.config import load_config

    epochs = load_config(os.path.join(ROOT, CONFIG))["Global"]["epochs"]
    rows = []
    for seed in args.seeds:
        for mode in args.modes:
            out = run_dir(args.root, mode, seed)
            command = [sys.executable, "tools/train.py", "-c", CONFIG, "-o", f"Global.seed={seed}",
                       "-o", f"Global.output_dir={out}", "-o", MODES[mode]]
            metrics, load = finished(out, epochs), None
            if metrics is None:
                load = {"before": os.getloadavg()[0]}
                print("running:", " ".join(command[1:]), flush=True)
                log = os.path.join(args.root, f"main_{mode}_s{seed}.log")
                os.makedirs(args.root, exist_ok=True)
                with open(log, "w") as f:
                    subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)
                metrics = finished(out, epochs)
                load["after"] = os.getloadavg()[0]
            rows.append({"small_input": mode == "on", "seed": seed, "best_top1": metrics["best"]["top1"],
                         "best_epoch": metrics["best"]["epoch"], "last_top1": metrics["last"]["top1"],
                         "wall_time_s": metrics["wall_time_s"], "train_images_per_s": metrics["train_images_per_s"],
                         # wall time outside train_one_epoch (evaluation, checkpoints, metrics.json), as a share
                         "outside_epochs_pct": 100 * (1 - sum(h["train"]["seconds"] for h in metrics["history"])
                                                      / metrics["wall_time_s"]),
                         "load_average_1min": load,  # None: an earlier run, read from its metrics.json
                         "command": " ".join(["python"] + command[1:])})
            r = rows[-1]
            print(f"small_input {mode:3s} seed {seed}: best top-1 {r['best_top1']:.2f}% (epoch {r['best_epoch']}), "
                  f"last {r['last_top1']:.2f}%, {r['wall_time_s']:.0f} s, {r['train_images_per_s']:.0f} img/s",
                  flush=True)
    summary = {}
    for mode in args.modes:
        mine = [r for r in rows if r["small_input"] == (mode == "on")]
        summary[mode] = {}
        for key in ("best_top1", "last_top1", "wall_time_s", "train_images_per_s", "outside_epochs_pct"):
            values = [r[key] for r in mine]
            summary[mode][key] = {"mean": statistics.mean(values), "min": min(values), "max": max(values)}
        s = summary[mode]
        print(f"small_input {mode:3s} over {len(mine)} seeds: best top-1 {s['best_top1']['mean']:.2f}% "
              f"({s['best_top1']['min']:.2f}-{s['best_top1']['max']:.2f}), {s['wall_time_s']['mean']:.0f} s "
              f"({s['wall_time_s']['min']:.0f}-{s['wall_time_s']['max']:.0f}), "
              f"{s['train_images_per_s']['mean']:.0f} img/s, {s['outside_epochs_pct']['mean']:.1f} % of the wall time "
              "outside the training epochs")
    if args.json:
        import paddle

        with open(args.json, "w") as f:
            json.dump({"config": CONFIG, "epochs": epochs, "paddle": paddle.__version__, "cpu_count": os.cpu_count(),
                       "runs": rows, "summary": summary}, f, indent=2)


if __name__ == "__main__":
    main()
