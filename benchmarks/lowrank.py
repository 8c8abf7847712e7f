"""Low-rank factorisation and product quantization against the undecomposed model, in one run.

For a CIFAR-10 model trained by our configs (``configs/cifar10/<family>.yaml``, e.g. the
background job's ``/work/artifacts/cifar10/<arch>/best_model.pdparams``) and each variant of
its preset: params and MAdds (at the latency input size and at 32x32), weight-file bytes
(``.pdparams``; pq also its ``.pq.npz``), Paddle Inference predictor latency at batch 1 and 8
(2 threads, oneDNN, all variants timed interleaved, medians) and top-1 on the CIFAR-10 test
list before, right after, and after a short fine-tune (the ordinary trainer on an
``--fine-tune-images`` random subset of train_10k_list.txt, rebuilding the model from its
``.arch.json``). With ``--cost-only`` (no trained weights yet) only the costs are measured;
the variants then use ranks that do not depend on the weights.

    python benchmarks/lowrank.py --arch shufflenet_v1_g3_x0_5 --config configs/cifar10/shufflenet_v1.yaml \\
        --weights /work/artifacts/cifar10/shufflenet_v1_g3_x0_5/best_model.pdparams \\
        --json docs/results/lowrank_shufflenet_v1_g3_x0_5.json
    python benchmarks/lowrank.py --arch alexnet --config configs/cifar10/alexnet.yaml --cost-only \\
        --json docs/results/lowrank_alexnet_cost.json
    python benchmarks/lowrank.py --render docs/results/lowrank_alexnet_cost.json   # the markdown table
"""
import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import ppzoo  # noqa: E402  (first: it silences paddle's import-time warnings)
from ppzoo.analysis import profile_model  # noqa: E402
from ppzoo.compress import save_compressed  # noqa: E402
from ppzoo.compress import add_pass  # noqa: E402
from ppzoo.compress.lowrank import METHODS, choose_ranks, decompose, pq_bytes, product_quantize, save_pq  # noqa: E402
from ppzoo.compress.lowrank.decompose import get_layer, select_layers, set_layer  # noqa: E402
from ppzoo.config import load_config  # noqa: E402
from ppzoo.data import sample_images  # noqa: E402
from ppzoo.deploy.export import export_model  # noqa: E402
from ppzoo.deploy.predictor import Predictor  # noqa: E402
from ppzoo.engine import evaluate_config, train  # noqa: E402
from ppzoo.utils.timing import time_interleaved  # noqa: E402
from ppzoo.utils.weights import load_weights  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.environ.get("PPZOO_CIFAR10", os.path.join(ROOT, "..", "shared", "datasets", "cifar10"))


def _alexnet(conv2_5):
    """AlexNet's variants, given the layer names of conv2-5 (they differ between layouts)."""
    return [
        ("svd fc6+fc7 rank 256", "svd", ["pre_logits.*"], {"rank": 256}),
        ("svd fc6+fc7 ratio 0.2", "svd", ["pre_logits.*"], {"ratio": 0.2}),
        ("svd fc6+fc7 ratio 0.2 data-aware", "svd", ["pre_logits.*"], {"ratio": 0.2, "calibration_images": 512}),
        ("tucker2 conv2-5 ratio 0.33", "tucker2", list(conv2_5), {"ratio": 0.33}),
        ("cp conv3-5 ratio 0.33", "cp", list(conv2_5[1:]), {"ratio": 0.33}),
        ("pq fc6-8 d4 K256", "pq", ["pre_logits.*", "fc"], {"subvector": 4, "codebook": 256}),
        ("pq fc6-8 d4 K256 data-aware", "pq", ["pre_logits.*", "fc"],
         {"subvector": 4, "codebook": 256, "calibration_images": 512}),
    ]


# variant name -> (method, layers, options): what the issue asks per family (the first key
# an architecture name starts with)
PRESETS = {
    "alexnet_single": _alexnet(["features.3", "features.6", "features.8", "features.10"]),  # the single tower
    "alexnet": _alexnet(["features.4", "features.8", "features.10", "features.12"]),  # two towers (groups = 2)
    "mobilenet_v1": [
        ("svd classifier rank 4", "svd", ["fc"], {"rank": 4}),
        ("svd classifier rank 4 data-aware", "svd", ["fc"], {"rank": 4, "calibration_images": 512}),
        ("svd 1x1 auto energy 0.9", "svd", "auto", {"energy": 0.9}),
        ("pq FC+1x1 d4 K256", "pq", "auto", {"subvector": 4, "codebook": 256}),
        ("pq FC+1x1 d4 K256 data-aware", "pq", "auto", {"subvector": 4, "codebook": 256, "calibration_images": 512}),
    ],
    "resnet": [  # ResNet-18/34 basic blocks: every 3x3 conv of the four stages (the stem's 7x7 / 3x3 kept)
        ("tucker2 3x3 ratio 0.33", "tucker2", ["stages.*.branch.*.0"], {"ratio": 0.33}),
        ("cp 3x3 ratio 0.33", "cp", ["stages.*.branch.*.0"], {"ratio": 0.33}),
        ("pq 1x1+fc d4 K256", "pq", "auto", {"subvector": 4, "codebook": 256}),
    ],
    "shufflenet_v1": [
        ("svd classifier rank 4", "svd", ["fc"], {"rank": 4}),
        ("svd 1x1+fc auto energy 0.9", "svd", "auto", {"energy": 0.9}),
        ("spatial_svd depthwise rank 1", "spatial_svd", ["stages.*.depthwise.0"], {"rank": 1}),
        ("pq FC+1x1 d2 K16", "pq", "auto", {"subvector": 2, "codebook": 16}),
        ("pq FC+1x1 d2 K16 data-aware", "pq", "auto", {"subvector": 2, "codebook": 16, "calibration_images": 512}),
    ],
}


def _family(arch: str) -> str:
    return next(f for f in PRESETS if arch.startswith(f))


def _subset(path: str, n: int, out: str) -> str:
    lines = open(path).read().split("\n")
    lines = [line for line in lines if line.strip()]
    keep = sorted(np.random.default_rng(0).choice(len(lines), size=min(n, len(lines)), replace=False))
    with open(out, "w") as f:
        f.write("\n".join(lines[i] for i in keep) + "\n")
    return out


def _config(args, arch_name: str, extra=()):
    return load_config(args.config, [
        f"Arch.name={arch_name}", "Global.class_num=10", f"Global.output_dir={args.work}/runs",
        "Global.print_batch_step=1000",
        f"DataLoader.Train.dataset.image_root={CIFAR}",
        f"DataLoader.Train.dataset.cls_label_path={args.train_list}",
        f"DataLoader.Eval.dataset.image_root={CIFAR}",
        f"DataLoader.Eval.dataset.cls_label_path={CIFAR}/{args.eval_list}",
        f"DataLoader.Eval.dataset.class_names_path={CIFAR}/labels.txt", *extra], quiet=True)


def _structure_only(model, method, layers, options, arch):
    """--cost-only: the factorised structure at the ranks ``options`` fix (weights left as
    initialised: costs do not depend on them); pq: the bytes of its codes and codebooks."""
    names = select_layers(model, layers)
    changed, pq = [], 0
    for name in names:
        layer = get_layer(model, name)
        if method == "pq":
            shape = list(layer.weight.shape)  # Linear [in, out], conv [out, in/g, 1, 1]
            rows, width = (shape[1], shape[0]) if len(shape) == 2 else (shape[0], int(np.prod(shape[1:])))
            small = pq_bytes(rows, width, options["subvector"], options["codebook"])
            if small < rows * width * 4:  # product_quantize keeps a layer its codebooks would not shrink
                pq += small - rows * width * 4
                changed.append({"layer": name})
            continue
        ranks = choose_ranks(method, layer, name, **options)
        set_layer(model, name, METHODS[method].build(layer, ranks))
        changed.append({"layer": name, "ranks": ranks})
    if method != "pq":
        add_pass(model, "lowrank", {"method": method, "layers": changed}, arch)
    return changed, pq


def _costs(model, size):
    """Params (pq's frozen weights included, as ``count_params`` counts them) and MAdds at
    ``size`` and at 32x32 (``None`` for a layout that does not take 32x32, e.g. ImageNet AlexNet)."""
    s224 = profile_model(model, (3, size, size))
    try:
        madds_32 = profile_model(model, (3, 32, 32)).madds
    except ValueError:
        madds_32 = None
    return {"params": s224.params, f"madds_{size}": s224.madds, "madds_32": madds_32}


def _fine_tune(args, arch_file: str, weights: str, name: str) -> dict:
    out = os.path.join(args.work, "runs", name)
    summary = train(_config(args, arch_file, [
        f"Global.pretrained_model={weights}", f"Global.epochs={args.fine_tune_epochs}",
        f"Global.output_dir={out}", f"Optimizer.lr.learning_rate={args.fine_tune_lr}", "Optimizer.lr.warmup_epoch=0"]))
    best = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f == "best_model.pdparams"]
    return {"top1": summary["last"]["top1"], "seconds": round(summary["wall_time_s"], 1), "weights": best[0]}


def markdown(result: dict) -> str:
    """The table docs/compression.md shows, from a result JSON."""
    size = result["size"]
    both = size != 32  # a run at 32x32 has one MAdds column
    lines = [f"| variant | layers changed | params | MAdds {size}x{size} | " + ("MAdds 32x32 | " if both else "")
             + "file bytes | latency b1 / b8 (ms) | speed-up b1 / b8 | top-1 before / after / fine-tuned |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if both else "")]
    for r in result["rows"]:
        size_text = f"{r['file_bytes']:,}"
        if "pq_file_bytes" in r:
            size_text += f" (pq.npz {r['pq_file_bytes']:,})"
        elif "pq_bytes_computed" in r:
            size_text += f" (pq {r['pq_bytes_computed']:,}, computed)"
        top = " / ".join("-" if r.get(k) is None else f"{r[k]:.2f}"
                         for k in ("top1_before", "top1_after", "top1_fine_tuned"))
        if r["variant"] == "baseline":
            top = " / ".join("-" if r.get(k) is None else f"{r[k]:.2f}" for k in ("top1_before", "top1_fine_tuned"))
            top = top.replace(" / ", " / - / ") if r.get("top1_before") is not None else "-"
        lat, sp = r["latency_ms"], r["speedup"]
        madds_32 = ('-' if r['madds_32'] is None else format(r['madds_32'], ',')) + " | " if both else ""
        lines.append(f"| {r['variant']} | {r.get('layers_changed', '-')} | {r['params']:,} | {r[f'madds_{size}']:,} | "
                     f"{madds_32}{size_text} | {lat['batch1']:.1f} / {lat['batch8']:.1f} | "
                     f"{sp['batch1']:.2f}x / {sp['batch8']:.2f}x | {top} |")
    return "\n".join(lines)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--render":  # print the table of an earlier run
        with open(sys.argv[2]) as f:
            print(markdown(json.load(f)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--config", required=True, help="the CIFAR-10 config the model was trained with")
    parser.add_argument("--weights", help="trained .pdparams (omit with --cost-only)")
    parser.add_argument("--cost-only", action="store_true", help="no trained weights: params, MAdds, bytes, latency")
    parser.add_argument("--imagenet-layout", action="store_true",
                        help="with --cost-only: the ImageNet layout (small_input off), as the papers time it")
    parser.add_argument("--variants", nargs="*", help="names from the family's preset (default: all)")
    parser.add_argument("--size", type=int, default=224, help="latency and MAdds input size")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-list", default="test_2k_list.txt")
    parser.add_argument("--fine-tune-images", type=int, default=1000)
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--fine-tune-lr", type=float, default=0.01)
    parser.add_argument("--work", default="output/bench_lowrank")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.imagenet_layout and not args.cost_only:
        parser.error("--imagenet-layout measures costs only (the CIFAR-10 weights are small-input): add --cost-only")
    if not args.cost_only and not (args.weights and os.path.isfile(args.weights)):
        sys.exit(f"error: --weights {args.weights} not found (train it, or use --cost-only)")
    if not args.cost_only and not os.path.isdir(CIFAR):
        sys.exit(f"error: CIFAR-10 not found at {CIFAR} (set PPZOO_CIFAR10)")
    os.makedirs(args.work, exist_ok=True)
    family = _family(args.arch)
    variants = [v for v in PRESETS[family] if not args.variants or v[0] in args.variants]
    small = not args.imagenet_layout
    arch = {"name": args.arch, "class_num": 10, "small_input": small}
    started, trained = time.perf_counter(), None
    base_weights = os.path.join(args.work, "baseline.pdparams")
    baseline = ppzoo.create_model(args.arch, num_classes=10, small_input=small)
    if not args.cost_only:
        metrics = os.path.join(os.path.dirname(args.weights), "metrics.json")  # read with the copy, not later
        trained = json.load(open(metrics)).get("best") if os.path.isfile(metrics) else None
        shutil.copyfile(args.weights, base_weights)  # the background job may rewrite its file meanwhile
        load_weights(baseline, base_weights)
        args.train_list = _subset(os.path.join(CIFAR, "train_10k_list.txt"), args.fine_tune_images,
                                  os.path.join(args.work, "fine_tune_list.txt"))
    else:
        args.train_list = os.path.join(CIFAR, "train_10k_list.txt")
    baseline.eval()
    save_compressed(baseline, os.path.join(args.work, "baseline"), arch)
    rows = [{"variant": "baseline", "file_bytes": os.path.getsize(base_weights), **_costs(baseline, args.size)}]
    models = {"baseline": baseline}
    if not args.cost_only:
        rows[0]["top1_before"] = evaluate_config(_config(args, args.arch, [f"Global.pretrained_model={base_weights}"]))[
            "top1"]
        # the same fine-tune for the undecomposed model: a short-trained baseline gains from it too
        rows[0]["top1_fine_tuned"] = _fine_tune(args, os.path.join(args.work, "baseline.arch.json"), base_weights,
                                                "baseline")["top1"]
        print(f"baseline: top-1 {rows[0]['top1_before']:.2f}, {rows[0]['top1_fine_tuned']:.2f} fine-tuned", flush=True)
    for name, method, layers, options in variants:
        if args.cost_only and layers == "auto":
            print(f"{name}: skipped with --cost-only (its automatic plan reads the trained weights)", flush=True)
            continue
        model = ppzoo.create_model(args.arch, num_classes=10, small_input=small)
        if not args.cost_only:
            load_weights(model, base_weights)
        model.eval()
        options = dict(options)
        count = options.pop("calibration_images", 0)  # data-aware: training images, eval transforms
        data = sample_images(_config(args, args.arch), count, key=f"{name}: calibration images") \
            if count and not args.cost_only else None
        t0 = time.perf_counter()  # decompose_s: the decomposition, not the loading of calibration images
        if args.cost_only:
            changed, pq_delta = _structure_only(model, method, layers, options, arch)
            prefix = os.path.join(args.work, name.replace(" ", "_").replace("+", "_"))
            save_compressed(model, prefix, arch)
            row = {"variant": name, "method": method, "layers_changed": len(changed), "layers": changed,
                   "file_bytes": os.path.getsize(prefix + ".pdparams"), **_costs(model, args.size)}
            if method == "pq":  # closed form: codes + codebooks instead of the float32 weights
                row["pq_bytes_computed"] = os.path.getsize(prefix + ".pdparams") + pq_delta
            print(f"{name}: {len(changed)} layers; params {row['params']:,}", flush=True)
            rows.append(row)
            models[name] = model
            continue
        if method == "pq":
            report = product_quantize(model, layers, arch=arch, data=data, **options)
        else:
            report = decompose(model, method, layers, input_size=(3, args.size, args.size), threads=args.threads,
                               arch=arch, data=data, **options)
        seconds = time.perf_counter() - t0
        prefix = os.path.join(args.work, name.replace(" ", "_").replace("+", "_"))
        arch_file = save_compressed(model, prefix, arch)
        row = {"variant": name, "method": method, "layers_changed": len(report.layers),
               "layers_kept": len(report.skipped), "decompose_s": round(seconds, 1),
               "file_bytes": os.path.getsize(prefix + ".pdparams"), **_costs(model, args.size),
               "report": report.as_dict()}
        if method == "pq":
            row["pq_file_bytes"] = save_pq(model, prefix)
        print(f"{name}: {len(report.layers)} layers changed in {seconds:.0f} s; params {row['params']:,}", flush=True)
        if not args.cost_only and report.layers:
            cfg = _config(args, arch_file, [f"Global.pretrained_model={prefix}.pdparams"])
            row["top1_after"] = evaluate_config(cfg)["top1"]
            tuned_run = _fine_tune(args, arch_file, prefix + ".pdparams", os.path.basename(prefix))
            row["top1_fine_tuned"] = tuned_run["top1"]
            row["fine_tune"] = {"images": args.fine_tune_images, "epochs": args.fine_tune_epochs,
                                "lr": args.fine_tune_lr, "seconds": tuned_run["seconds"]}
            if method == "pq":  # the fine-tuned weights still lie on their codebooks
                tuned = ppzoo.create_model(arch_file)
                load_weights(tuned, tuned_run["weights"])
                row["pq_file_bytes_fine_tuned"] = save_pq(tuned, prefix + "_fine_tuned")
            print(f"{name}: top-1 {row['top1_after']:.2f} right after, {row['top1_fine_tuned']:.2f} fine-tuned",
                  flush=True)
        rows.append(row)
        models[name] = model
    # predictor latency: every variant exported (export checks predictor == dygraph), timed interleaved
    predictors = {}
    for name, model in models.items():
        folder = os.path.join(args.work, "export", name.replace(" ", "_").replace("+", "_"))
        meta = export_model(model, folder, (3, args.size, args.size))
        predictors[name] = Predictor(folder, threads=args.threads)
        next(r for r in rows if r["variant"] == name)["export_checks"] = meta.get("checks", {})
    for batch in (1, 8):
        x = np.random.default_rng(0).standard_normal([batch, 3, args.size, args.size]).astype("float32")
        times = time_interleaved({k: (lambda p=p: p.run(x)) for k, p in predictors.items()}, args.repeat, 2)
        base = times["baseline"].median
        for row in rows:
            t = times[row["variant"]].median
            row.setdefault("latency_ms", {})[f"batch{batch}"] = round(t * 1e3, 2)
            row.setdefault("speedup", {})[f"batch{batch}"] = round(base / t, 3)
    result = {"arch": args.arch, "config": args.config, "weights": args.weights, "weights_best_epoch": trained,
              "cost_only": args.cost_only,
              "eval_list": args.eval_list, "size": args.size, "threads": args.threads, "repeat": args.repeat,
              "seconds": round(time.perf_counter() - started), "command": " ".join(sys.argv), "rows": rows}
    text = json.dumps(result, indent=2)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
