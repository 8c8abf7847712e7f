"""Does distillation help on real images? Students alone vs with a teacher, on CIFAR-10.

Uses ../shared/datasets/cifar10 (or $PPZOO_CIFAR10) in small-input mode with the recipe of
configs/cifar10/*.yaml and the distillation configs in configs/distill/. For every student
and arm, the same epochs, augmentation, data order and seed set:

* ``alone``: the student with cross-entropy (configs/cifar10/<family>.yaml);
* ``kd``: + KL at T=4 from the frozen teacher (configs/distill/cifar10_kd.yaml);
* ``dkd``: + decoupled KD, alpha 1, beta 8, T 4 (configs/distill/cifar10_dkd.yaml);
* ``dkd_warmup``: the same with the DKD term's linear warm-up (``warmup_epochs``, the paper's
  code; ``--dkd-warmup-epochs``);
* ``dml``: two copies of the student taught by each other (configs/distill/cifar10_dml.yaml).

The teacher is trained first with the same script (``--teacher-epochs``) unless
``--teacher-weights`` names a trained one; its test top-1 is measured on the same test list.
Results (every run, then mean and sample standard deviation per arm) go to ``--json``;
an existing file is extended, so arms can be run in several invocations.

    # the issue's full protocol (many hours on 2 CPU cores)
    python benchmarks/distill_cifar10.py --teacher mobilenet_v2_x1_0 --teacher-epochs 30 --epochs 30 \\
        --students mobilenet_v1_x0_5 shufflenet_v1_g3_x0_5 --arms alone kd dml dkd --seeds 0 1 2 \\
        --json docs/results/distill_cifar10.json
    # a reduced run: one student, a trained teacher, 500 images per class, 3 epochs
    python benchmarks/distill_cifar10.py --teacher shufflenet_v1_g3_x0_5 \\
        --teacher-weights /work/artifacts/cifar10/shufflenet_v1_g3_x0_5/best_model.pdparams \\
        --students shufflenet_v1_g3_x0_5 --arms alone kd --per-class 500 --epochs 3 --json docs/results/distill_cifar10.json
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402,F401  (first: it silences paddle's import-time warnings)
from ppzoo.config import load_config  # noqa: E402
from ppzoo.engine import evaluate_config, train  # noqa: E402
from ppzoo.registry import model_info  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.environ.get("PPZOO_CIFAR10", os.path.join(ROOT, "..", "shared", "datasets", "cifar10"))
ARM_CONFIGS = {"kd": "cifar10_kd.yaml", "dkd": "cifar10_dkd.yaml", "dkd_warmup": "cifar10_dkd.yaml",
               "dml": "cifar10_dml.yaml"}


def family_config(model: str) -> str:
    family = model_info(model).family
    path = os.path.join(ROOT, "configs", "cifar10", f"{family}.yaml")
    if not os.path.isfile(path):
        sys.exit(f"error: no CIFAR-10 config for family '{family}' of {model} (configs/cifar10/)")
    return path


def subset_list(src: str, per_class: int, out_dir: str) -> str:
    """The first ``per_class`` images of each class of ``src``, in file order (deterministic)."""
    if not per_class:
        return src
    counts, lines = defaultdict(int), []
    with open(src, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            label = line.split()[-1]
            if counts[label] < per_class:
                counts[label] += 1
                lines.append(line if line.endswith("\n") else line + "\n")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"train_{per_class}_per_class.txt")
    tmp = f"{path}.{os.getpid()}"  # several invocations may run in parallel
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, path)
    return path


def data_overrides(args, train_list: str) -> list:
    return [f"DataLoader.Train.dataset.image_root={CIFAR}", f"DataLoader.Train.dataset.cls_label_path={train_list}",
            f"DataLoader.Eval.dataset.image_root={CIFAR}",
            f"DataLoader.Eval.dataset.cls_label_path={os.path.join(CIFAR, args.test_list)}",
            f"DataLoader.Eval.dataset.class_names_path={os.path.join(CIFAR, 'labels.txt')}",
            f"DataLoader.Train.sampler.batch_size={args.batch_size}", f"Optimizer.lr.learning_rate={args.lr}",
            f"Global.print_batch_step={args.print_every}", "Global.save_interval=1000",
            f"Global.cpu_threads={args.cpu_threads}"]


def run_one(args, arm: str, student: str, seed: int, train_list: str, teacher_weights: str) -> dict:
    folder = f"{arm}{args.dkd_warmup_epochs}" if arm == "dkd_warmup" else arm  # one folder per warm-up length
    out = os.path.join(args.output, folder, student, f"seed{seed}")
    common = data_overrides(args, train_list) + [f"Global.epochs={args.epochs}", f"Global.seed={seed}",
                                                 f"Global.eval_interval={args.epochs}", f"Global.output_dir={out}"]
    if arm == "alone":
        path = family_config(student)
        cfg = load_config(path, common + [f"Arch.name={student}"], quiet=True)
    else:
        path = os.path.join(ROOT, "configs", "distill", ARM_CONFIGS[arm])
        # the student is built as its family's config builds it alone (e.g. ShuffleNet's zero_init_last)
        with open(family_config(student), encoding="utf-8") as f:
            own = {k: v for k, v in (yaml.safe_load(f).get("Arch") or {}).items() if k not in ("name", "class_num")}
        if arm == "dml":
            slots = ["Arch.models.0.Student", "Arch.models.1.Student1"]
            names = []
        else:
            slots = ["Arch.models.1.Student"]
            names = [f"Arch.models.0.Teacher.name={args.teacher}", f"Arch.models.0.Teacher.pretrained={teacher_weights}"]
        names += [f"{slot}.name={student}" for slot in slots]
        names += [f"{slot}.{k}={v}" for slot in slots for k, v in own.items()]
        if arm == "dkd_warmup":
            names.append(f"Loss.Train.1.DistillationDKDLoss.warmup_epochs={args.dkd_warmup_epochs}")
        cfg = load_config(path, common + names, quiet=True)
    start = time.perf_counter()
    summary = train(cfg, config_path=os.path.relpath(path, ROOT))
    last = summary["history"][-1]
    row = {"arm": arm, "student": student, "seed": seed, "epochs": args.epochs, "top1": summary["last"]["top1"],
           "top5": summary["last"]["top5"], "train_images_per_s": summary["train_images_per_s"],
           "wall_time_s": time.perf_counter() - start, "output_dir": summary["output_dir"]}
    if arm == "dkd_warmup":
        row["dkd_warmup_epochs"] = args.dkd_warmup_epochs
    if "images_per_s_without_teacher" in last["train"]:
        row["train_images_per_s_without_teacher"] = float(statistics.median(
            h["train"]["images_per_s_without_teacher"] for h in summary["history"]))
        row["teacher_seconds"] = sum(h["train"]["teacher_seconds"] for h in summary["history"])
    return row


def train_teacher(args, train_list: str) -> str:
    out = os.path.join(args.output, "teacher")
    init = [f"Global.pretrained_model={args.teacher_from}"] if args.teacher_from else []
    cfg = load_config(family_config(args.teacher), data_overrides(args, train_list) + init + [
        f"Arch.name={args.teacher}", f"Global.epochs={args.teacher_epochs}", "Global.seed=100",
        f"Global.eval_interval={args.teacher_epochs}", f"Global.output_dir={out}"], quiet=True)
    summary = train(cfg)
    return os.path.join(summary["output_dir"], "best_model.pdparams")


def eval_teacher(args, weights: str, train_list: str) -> dict:
    cfg = load_config(family_config(args.teacher), data_overrides(args, train_list) + [
        f"Arch.name={args.teacher}", f"Global.pretrained_model={weights}"], quiet=True)
    result = evaluate_config(cfg)
    return {"model": args.teacher, "weights": weights, "top1": result["top1"], "top5": result["top5"]}


def summarise(runs: list) -> list:
    groups = defaultdict(list)
    for r in runs:
        groups[(r["student"], r["arm"])].append(r)
    rows = []
    for (student, arm), rs in sorted(groups.items()):
        tops = [r["top1"] for r in sorted(rs, key=lambda r: r["seed"])]
        rows.append({"student": student, "arm": arm, "n": len(tops), "seeds": sorted(r["seed"] for r in rs),
                     "top1": tops, "mean": statistics.mean(tops),
                     "std": statistics.stdev(tops) if len(tops) > 1 else None,
                     "min": min(tops), "max": max(tops),
                     "train_images_per_s": statistics.median(r["train_images_per_s"] for r in rs)})
        without = [r["train_images_per_s_without_teacher"] for r in rs if "train_images_per_s_without_teacher" in r]
        if without:
            rows[-1]["train_images_per_s_without_teacher"] = statistics.median(without)
    alone = {r["student"]: r for r in rows if r["arm"] == "alone"}
    for r in rows:
        base = alone.get(r["student"])
        if base is not None and r["arm"] != "alone":
            r["gain_vs_alone"] = r["mean"] - base["mean"]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="mobilenet_v2_x0_5")
    parser.add_argument("--teacher-weights", help="a trained teacher (.pdparams); default: train it here")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--teacher-from", help="start the teacher's training from these weights (default: scratch)")
    parser.add_argument("--teacher-only", action="store_true", help="train and evaluate the teacher, then stop")
    parser.add_argument("--combine", nargs="+", metavar="JSON",
                        help="merge result files of runs made in parallel (same settings) into --json, then stop")
    parser.add_argument("--students", nargs="+", default=["mobilenet_v1_x0_5", "shufflenet_v1_g3_x0_5"])
    parser.add_argument("--arms", nargs="+", default=["alone", "kd", "dml", "dkd"], choices=["alone", *ARM_CONFIGS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--dkd-warmup-epochs", type=int, default=2,
                        help="dkd_warmup arm: epochs of the DKD term's linear warm-up (the paper: 20 of 240)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-list", default="train_10k_list.txt", help="label list under the dataset root")
    parser.add_argument("--per-class", type=int, default=0, help="keep the first N images per class (0: all)")
    parser.add_argument("--test-list", default="test_list.txt")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--cpu-threads", type=int, default=0,
                        help="Paddle's CPU threads per run (0: the trainer's default, all cores); 1 when two benchmarks share 2 cores")
    parser.add_argument("--print-every", type=int, default=20)
    parser.add_argument("--output", default="output/bench_distill_cifar10")
    parser.add_argument("--json")
    parser.add_argument("--render", metavar="JSON", help="print the docs' table of a result file, then stop")
    args = parser.parse_args()
    if args.render:
        return render(args.render) or 0
    if args.combine:
        return combine(args.combine, args.json)
    if not os.path.isdir(CIFAR):
        sys.exit(f"error: CIFAR-10 not found at {CIFAR} (set PPZOO_CIFAR10)")
    train_list = subset_list(os.path.join(CIFAR, args.train_list), args.per_class, args.output)
    result = {"runs": []}
    if args.json and os.path.isfile(args.json):
        with open(args.json, encoding="utf-8") as f:
            result = json.load(f)
    settings = {"epochs": args.epochs, "train_list": args.train_list, "per_class": args.per_class,
                "test_list": args.test_list, "batch_size": args.batch_size, "lr": args.lr, "teacher": args.teacher}
    if result.get("settings") not in (None, settings):
        sys.exit(f"error: {args.json} holds runs with other settings ({result['settings']}); use another --json")
    result["settings"] = settings
    needs_teacher = args.teacher_only or any(a != "alone" and a != "dml" for a in args.arms)  # the teacher arms
    weights = None
    if needs_teacher:
        weights = args.teacher_weights or train_teacher(args, train_list)
        trained_here = None if args.teacher_weights else {"epochs": args.teacher_epochs, "from": args.teacher_from,
                                                          "seed": 100, "train_list": train_list}
        # freeze the teacher file the students see (a background job may overwrite its source)
        os.makedirs(args.output, exist_ok=True)
        frozen = os.path.join(args.output, "teacher_used.pdparams")
        if os.path.abspath(weights) != os.path.abspath(frozen):
            tmp = f"{frozen}.{os.getpid()}"  # several invocations may run in parallel
            shutil.copyfile(weights if weights.endswith(".pdparams") else weights + ".pdparams", tmp)
            os.replace(tmp, frozen)
        if result.get("teacher") is None:
            result["teacher"] = {**eval_teacher(args, frozen, train_list), "source": weights}
            if trained_here:
                result["teacher"]["training"] = trained_here
        weights = frozen
    if args.teacher_only:
        write(result, args.json)
        print(f"teacher {args.teacher}: test top-1 {result['teacher']['top1']:.2f} % ({weights})")
        return 0
    warmups = {r["dkd_warmup_epochs"] for r in result["runs"] if "dkd_warmup_epochs" in r}
    if "dkd_warmup" in args.arms and warmups - {args.dkd_warmup_epochs}:
        sys.exit(f"error: {args.json} holds dkd_warmup runs with --dkd-warmup-epochs {sorted(warmups)}; "
                 f"use another --json for {args.dkd_warmup_epochs}")
    done = {(r["arm"], r["student"], r["seed"]) for r in result["runs"]}
    for seed in args.seeds:  # seed outermost: a load change or a stop hits every arm alike
        for student in args.students:
            for arm in args.arms:
                if (arm, student, seed) in done:
                    continue
                result["runs"].append(run_one(args, arm, student, seed, train_list, weights))
                result["summary"] = summarise(result["runs"])
                write(result, args.json)
    report(result)
    return 0


def render(path: str) -> None:
    """The docs' table: every student and arm, top-1 over the seeds, gain over the student alone."""
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    t, st = result.get("teacher"), result["settings"]
    subset = f" ({st['per_class']} per class)" if st["per_class"] else ""
    teacher = f"Teacher `{t['model']}`: {t['top1']:.2f} % test top-1. " if t else ""
    print(f"{teacher}Students: {st['epochs']} epochs on {st['train_list']}{subset}, batch {st['batch_size']}, "
          f"LR {st['lr']}, tested on {st['test_list']}.\n")
    result["summary"] = summarise(result.get("runs", []))
    print("| student | arm | top-1 mean ± std (n) | range | vs alone | train img/s (without teacher) |")
    print("|---|---|---|---|---|---|")
    order = {"alone": 0, "kd": 1, "dkd": 2, "dkd_warmup": 3, "dml": 4}
    warmup = sorted({r["dkd_warmup_epochs"] for r in result["runs"] if "dkd_warmup_epochs" in r})
    labels = {"dkd_warmup": f"dkd, warm-up {warmup[0]} ep."} if warmup else {}
    for row in sorted(result["summary"], key=lambda r: (r["student"], order.get(r["arm"], 9))):
        std = f"{row['std']:.2f}" if row["std"] is not None else "-"
        gain = f"{row['gain_vs_alone']:+.2f}" if "gain_vs_alone" in row else ""
        without = row.get("train_images_per_s_without_teacher")
        speed = f"{row['train_images_per_s']:.0f}" + (f" ({without:.0f})" if without is not None else "")
        print(f"| `{row['student']}` | {labels.get(row['arm'], row['arm'])} | {row['mean']:.2f} ± {std} ({row['n']}) | "
              f"{row['min']:.2f}-{row['max']:.2f} | {gain} | {speed} |")


def write(result: dict, path) -> None:
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


def combine(paths: list, out) -> int:
    if not out:
        sys.exit("error: --combine needs --json OUT")
    merged = {"runs": []}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            part = json.load(f)
        if merged.get("settings") not in (None, part["settings"]):
            sys.exit(f"error: {path} was run with other settings ({part['settings']})")
        merged["settings"] = part["settings"]
        if part.get("teacher"):
            same = ("model", "source")
            if merged.get("teacher") and [merged["teacher"].get(k) for k in same] != [part["teacher"].get(k)
                                                                                    for k in same]:
                sys.exit(f"error: {path} used another teacher ({part['teacher']})")
            merged["teacher"] = part["teacher"]
        seen = {(r["arm"], r["student"], r["seed"]) for r in merged["runs"]}
        merged["runs"] += [r for r in part["runs"] if (r["arm"], r["student"], r["seed"]) not in seen]
    warmups = {r["dkd_warmup_epochs"] for r in merged["runs"] if "dkd_warmup_epochs" in r}
    if len(warmups) > 1:
        sys.exit(f"error: the files hold dkd_warmup runs of different warm-ups ({sorted(warmups)}); combine them apart")
    merged["summary"] = summarise(merged["runs"])
    write(merged, out)
    report(merged)
    return 0


def report(result: dict) -> None:
    if result.get("teacher"):
        print(f"teacher {result['teacher']['model']}: test top-1 {result['teacher']['top1']:.2f} %")
    for row in result.get("summary", []):
        std = f"{row['std']:.2f}" if row["std"] is not None else "-"
        gain = f", {row['gain_vs_alone']:+.2f} vs alone" if "gain_vs_alone" in row else ""
        print(f"{row['student']:24s} {row['arm']:6s} top-1 {row['mean']:.2f} +- {std} (n={row['n']}{gain})")


if __name__ == "__main__":
    sys.exit(main())
