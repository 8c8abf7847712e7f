"""Train each family's small-input model on the CIFAR-10 10k-image subset; record top-1 and time.

Uses ../shared/datasets/cifar10 (or $PPZOO_CIFAR10): train_10k_list.txt (1,000 images per
class) for training, the full 10,000-image test split for the final evaluation, and the
configs in configs/cifar10/ with their recipe (SGD + momentum, cosine, L2 5e-4). To fit
a 2-core CPU the MobileNets and ShuffleNet run at half width by default.

    python benchmarks/cifar10.py --epochs 5 --json docs/results/cifar10.json
    python benchmarks/cifar10.py --models shufflenet_v1=shufflenet_v1_g3_x1_0 --epochs 30
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402,F401  (first: it silences paddle's import-time warnings)
from ppzoo.config import load_config  # noqa: E402
from ppzoo.engine import train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.environ.get("PPZOO_CIFAR10", os.path.join(ROOT, "..", "shared", "datasets", "cifar10"))
DEFAULT_MODELS = {  # family config -> model it trains here
    "alexnet": "alexnet",
    "mobilenet_v1": "mobilenet_v1_x0_5",
    "mobilenet_v2": "mobilenet_v2_x0_5",
    "shufflenet_v1": "shufflenet_v1_g3_x0_5",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=[], metavar="FAMILY=MODEL",
                        help="replace a family's model (default: " +
                             ", ".join(f"{k}={v}" for k, v in DEFAULT_MODELS.items()) + ")")
    parser.add_argument("--families", nargs="*", default=list(DEFAULT_MODELS), choices=list(DEFAULT_MODELS))
    parser.add_argument("--output", default="output/bench_cifar10")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not os.path.isdir(CIFAR):
        sys.exit(f"error: CIFAR-10 not found at {CIFAR} (set PPZOO_CIFAR10)")
    models = dict(DEFAULT_MODELS, **dict(m.split("=", 1) for m in args.models))
    rows = []
    for family in args.families:
        cfg = load_config(os.path.join(ROOT, "configs", "cifar10", f"{family}.yaml"), [
            f"Arch.name={models[family]}",
            f"Global.epochs={args.epochs}", f"Global.eval_interval={args.epochs}",
            f"Global.save_interval={args.epochs}", f"Global.output_dir={args.output}", "Global.print_batch_step=20",
            f"DataLoader.Train.dataset.image_root={CIFAR}",
            f"DataLoader.Train.dataset.cls_label_path={CIFAR}/train_10k_list.txt",
            f"DataLoader.Eval.dataset.image_root={CIFAR}",
            f"DataLoader.Eval.dataset.cls_label_path={CIFAR}/test_list.txt",
            f"DataLoader.Eval.dataset.class_names_path={CIFAR}/labels.txt"])
        start = time.perf_counter()
        summary = train(cfg, config_path=f"configs/cifar10/{family}.yaml")
        rows.append({"family": family, "model": models[family], "epochs": args.epochs,
                     "top1": summary["last"]["top1"], "top5": summary["last"]["top5"],
                     "train_images_per_s": summary["train_images_per_s"],
                     "wall_time_s": time.perf_counter() - start})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n| family | model | epochs | test top-1 % | test top-5 % | train img/s | wall time |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['model']} | {r['epochs']} | {r['top1']:.2f} | {r['top5']:.2f} | "
              f"{r['train_images_per_s']:.0f} | {r['wall_time_s'] / 60:.1f} min |")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"epochs": args.epochs, "train_list": "train_10k_list.txt", "test_list": "test_list.txt",
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
