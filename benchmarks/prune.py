"""Structured pruning on CIFAR-10: uniform vs sensitivity-chosen ratios at MAdds targets.

For one trained small-input model: prune to each ``--targets`` share of MAdds with a uniform
ratio (bisection) and with per-group ratios from a sensitivity analysis (on held-out
training images: those of train_list.txt outside train_10k_list.txt), fine-tune every
pruned model the same fixed number of epochs through the ordinary trainer, and report top-1
(test_2k) before and after, params, MAdds, MAC, file size and the exported predictor's
latency (224x224, batch 1 and 8, 2 threads, all models timed interleaved in one run,
medians) against the unpruned model. ``--sparse`` adds unstructured magnitude zeros
(50/80/90 %, no fine-tune): predictor latency and sparse-storage file size.

    python benchmarks/prune.py --arch shufflenet_v1_g3_x0_5 --config configs/cifar10/shufflenet_v1.yaml \
        --weights /work/artifacts/cifar10/shufflenet_v1_g3_x0_5/best_model.pdparams \
        --data /work/shared/datasets/cifar10 --json docs/results/prune_shufflenet_v1_g3_x0_5.json --sparse
"""
import argparse
import glob
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from ppzoo.analysis import time_interleaved  # noqa: E402
from ppzoo.analysis.profile import profile_model  # noqa: E402
from ppzoo.compress import save_compressed  # noqa: E402
from ppzoo.compress.prune import Pruner  # noqa: E402
from ppzoo.compress.prune.sensitivity import plot_sensitivity, save_sensitivity, sensitivity, sensitivity_plan  # noqa
from ppzoo.compress.prune.sparsity import magnitude_masks, prunable_weights, save_sparse  # noqa: E402
from ppzoo.config import load_config  # noqa: E402
from ppzoo.data import build_dataloader  # noqa: E402
from ppzoo.deploy.export import export_model  # noqa: E402
from ppzoo.deploy.predictor import Predictor  # noqa: E402
from ppzoo.engine import train  # noqa: E402
from ppzoo.utils.runtime import set_cpu_threads  # noqa: E402


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def write_list(lines, path):
    with open(path, "w") as f:
        f.write("".join(lines))
    return path


def batches_of(cfg, list_path):
    section = json.loads(json.dumps(cfg["DataLoader"]["Eval"]))
    section["dataset"]["cls_label_path"] = list_path
    loader = build_dataloader(section, False, 10)
    return [(x, y) for x, y, _bad in loader if x is not None]


@paddle.no_grad()
def top1(model, batches):
    model.eval()
    right = total = 0
    for x, y in batches:
        pred = model(x).argmax(1).numpy()
        right += int((pred == y.numpy().reshape(-1)).sum())
        total += len(pred)
    return 100.0 * right / total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--criterion", default="l1_norm")
    p.add_argument("--targets", nargs="*", type=float, default=[0.7, 0.5])
    p.add_argument("--sens-ratios", nargs="*", type=float, default=[0.2, 0.4, 0.6, 0.8])
    p.add_argument("--sens-images", type=int, default=256)
    p.add_argument("--fine-tune-epochs", type=int, default=1)
    p.add_argument("--fine-tune-images", type=int, default=2000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--sparse", action="store_true")
    p.add_argument("--work", default="/tmp/ppzoo_prune_bench")
    p.add_argument("--json", required=True)
    a = p.parse_args()
    paddle.set_device("cpu")
    set_cpu_threads(a.threads)
    os.makedirs(a.work, exist_ok=True)
    data = a.data.rstrip("/") + "/"
    rng = random.Random(0)
    train10k = open(data + "train_10k_list.txt").readlines()
    in10k = set(train10k)
    held = [line for line in open(data + "train_list.txt").readlines() if line not in in10k]
    rng.shuffle(held)
    ft = list(train10k)
    rng.shuffle(ft)
    held_list = write_list(held[:a.sens_images], os.path.join(a.work, "heldout.txt"))
    ft_list = write_list(ft[:a.fine_tune_images], os.path.join(a.work, "finetune.txt"))
    paths = [f"DataLoader.{s}.dataset.image_root={data}" for s in ("Train", "Eval")]
    base_overrides = paths + [f"DataLoader.Eval.dataset.cls_label_path={data}test_2k_list.txt",
                              f"DataLoader.Eval.dataset.class_names_path={data}labels.txt",
                              f"DataLoader.Train.dataset.cls_label_path={ft_list}", f"Arch.name={a.arch}"]
    cfg = load_config(a.config, base_overrides, quiet=True)
    arch = {"name": a.arch, "class_num": 10, "small_input": True}
    test = batches_of(cfg, f"{data}test_2k_list.txt")
    heldout = batches_of(cfg, held_list)
    model = ppzoo.create_model(a.arch, num_classes=10, small_input=True, pretrained=a.weights)
    model.eval()
    base_top1 = top1(model, test)
    log(f"{a.arch}: baseline top-1 {base_top1:.2f} % on {sum(len(y) for _, y in test)} test images")
    started = time.time()
    pruner = Pruner(model, a.criterion, (3, 32, 32))
    sens = sensitivity(pruner, lambda m: top1(m, heldout), a.sens_ratios, log=log)
    sens_path = a.json.replace(".json", "_sensitivity.json")
    save_sensitivity(sens, sens_path)
    plot_sensitivity(sens, os.path.join("docs", "images", f"prune_sensitivity_{a.arch}.png"))
    log(f"sensitivity done in {time.time() - started:.0f} s")

    entries = [{"name": "baseline", "model": model, "top1_before": base_top1, "top1": base_top1,
                "prefix": os.path.join(a.work, "baseline")}]
    save_compressed(model, entries[0]["prefix"], arch)
    for target in a.targets:
        for method in ("uniform", "sensitivity"):
            plan = pruner.uniform_for_madds(target) if method == "uniform" else sensitivity_plan(pruner, sens, target)
            pruned = pruner.apply(plan, arch=arch)
            name = f"{method}_{int(round(target * 100))}"
            prefix = os.path.join(a.work, name, "pruned")
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
            arch_file = save_compressed(pruned, prefix, arch)
            before = top1(pruned, test)
            log(f"{name}: MAdds {pruner.madds(plan) / pruner.base_madds:.3f} of the model, top-1 before fine-tune "
                f"{before:.2f} %; fine-tuning {a.fine_tune_epochs} epoch(s) on {a.fine_tune_images} images")
            out = os.path.join(a.work, name, "ft")
            ft_cfg = load_config(a.config, base_overrides[:-1] + [
                f"Arch.name={arch_file}", f"Global.pretrained_model={prefix}.pdparams",
                f"Global.epochs={a.fine_tune_epochs}", f"Global.output_dir={out}", "Global.print_batch_step=50",
                f"Optimizer.lr.learning_rate={a.lr}"], quiet=True)
            train(ft_cfg)
            best = sorted(glob.glob(os.path.join(out, "**", "best_model.pdparams"), recursive=True))[0]
            tuned = ppzoo.create_model(arch_file, num_classes=10)
            tuned.set_state_dict(paddle.load(best))
            tuned._ppzoo_arch = pruned._ppzoo_arch
            after = top1(tuned, test)
            save_compressed(tuned, prefix + "_ft", arch)
            log(f"{name}: top-1 after fine-tune {after:.2f} %")
            entries.append({"name": name, "model": tuned, "top1_before": before, "top1": after,
                            "prefix": prefix + "_ft", "ratios": plan.achieved})
    if a.sparse:
        weights = prunable_weights(model)
        for s in (0.5, 0.8, 0.9):
            sparse = ppzoo.create_model(a.arch, num_classes=10, small_input=True, pretrained=a.weights)
            masks = magnitude_masks(prunable_weights(sparse), s)
            for k, w in prunable_weights(sparse).items():
                w.set_value(w.numpy() * masks[k])
            state = {k: v.numpy() for k, v in sparse.state_dict().items()}
            prefix = os.path.join(a.work, f"gmp_{int(s * 100)}")
            entries.append({"name": f"zeros_{int(s * 100)}", "model": sparse, "top1_before": top1(sparse, test),
                            "top1": None, "prefix": prefix, "sparse_bytes": save_sparse(state, prefix + ".sparse"),
                            "sparse8_bytes": save_sparse(state, prefix + ".sparse8", bits=8)})
            save_compressed(sparse, prefix, arch)
        del weights

    rows = []
    predictors = {}
    for e in entries:
        m = e["model"]
        m.eval()
        stats = profile_model(m, (3, 224, 224))
        small = profile_model(m, (3, 32, 32))
        folder = os.path.join(a.work, "export", e["name"])
        export_model(m, folder, (3, 224, 224), name=e["name"], verify=False)
        predictors[e["name"]] = Predictor(folder, threads=a.threads)
        row = {k: v for k, v in e.items() if k not in ("model", "prefix")}
        row.update(params=stats.params, madds_224=stats.madds, mac_224=stats.mac, madds_32=small.madds,
                   file_bytes=os.path.getsize(e["prefix"] + ".pdparams"))
        rows.append(row)
    for batch in (1, 8):
        x = np.random.default_rng(0).standard_normal([batch, 3, 224, 224]).astype("float32")
        fns = {n: (lambda pr=pr: pr.run(x)) for n, pr in predictors.items()}
        timings = time_interleaved(fns, a.repeat, 5)
        for row in rows:
            row[f"latency_b{batch}_ms"] = timings[row["name"]].median * 1e3
    base = rows[0]
    for row in rows:
        for batch in (1, 8):
            row[f"speedup_b{batch}"] = base[f"latency_b{batch}_ms"] / row[f"latency_b{batch}_ms"]
        row["madds_share"] = row["madds_32"] / base["madds_32"]
    result = {"arch": a.arch, "weights": a.weights, "criterion": a.criterion, "fine_tune_epochs": a.fine_tune_epochs,
              "fine_tune_images": a.fine_tune_images, "sens_images": a.sens_images, "threads": a.threads,
              "repeat": a.repeat, "command": " ".join(sys.argv), "rows": rows,
              "load_average": os.getloadavg()}
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1, default=float)
    print("| model | MAdds share | top-1 before FT | top-1 after FT | params | MAdds@224 (M) | MAC@224 (M) | file (KB) "
          "| sparse file (KB, f32 / 8-bit) | b1 ms | b8 ms | speed-up b1 / b8 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        after = "" if r["top1"] is None else f"{r['top1']:.2f}"
        sparse = f"{r['sparse_bytes'] / 1024:.0f} / {r['sparse8_bytes'] / 1024:.0f}" if "sparse_bytes" in r else ""
        print(f"| {r['name']} | {r['madds_share']:.3f} | {r['top1_before']:.2f} | {after} | {r['params']:,} | "
              f"{r['madds_224'] / 1e6:.1f} | {r['mac_224'] / 1e6:.1f} | {r['file_bytes'] / 1024:.0f} | {sparse} | "
              f"{r['latency_b1_ms']:.2f} | {r['latency_b8_ms']:.2f} | {r['speedup_b1']:.2f} / {r['speedup_b8']:.2f} |")


if __name__ == "__main__":
    main()
