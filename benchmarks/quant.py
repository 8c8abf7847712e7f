"""fp32 vs bf16 vs int8 PTQ vs int8 QAT on CIFAR-10 models, in one run.

For each model with a trained checkpoint in ``--artifacts/<arch>/best_model.pdparams``
(``tools/train.py -c configs/cifar10/<family>.yaml`` on the 10k-image subset):

* accuracy at the training size (32x32) on ``test_2k_list.txt`` through the predictor:
  fp32, bf16 (oneDNN bfloat16 on the fp32 program), int8 PTQ (per-channel weights, each
  observer of ``--algos``, calibration on ``--calib-batches`` x 32 training images with
  the eval transforms), int8 QAT (a short fine-tune through ``tools/train.py``'s trainer
  with ``Slim.quant: {name: qat}`` on ``--qat-images`` training images, 1 epoch, then its
  int8 export); top-1, and top-1 agreement / cosine of the outputs against fp32;
* file sizes of the weights (``.pdiparams``; fp32, fp16 storage, int8);
* latency at 224x224 (the same weights; small-input models take any size) of the four
  predictors, timed interleaved, medians, at batch 1 and 8 with ``--threads`` threads
  (the 224x224 int8 programs are calibrated on ``--latency-calib`` (16) upsampled images with ``--latency-algo``:
  they are for timing; accuracy is that of the 32x32 programs).

    python benchmarks/quant.py --json docs/results/quant.json
    python benchmarks/quant.py --models shufflenet_v1_g3_x0_5 --algos hist --qat-images 1280
    python benchmarks/quant.py --render docs/results/quant_cifar10_*.json    # the tables of the docs
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from _cifar10 import cifar10_overrides  # noqa: E402  (benchmarks/_cifar10.py)
from ppzoo.compress.quant import calibration_batches, export_int8, wrap_for_qat  # noqa: E402
from ppzoo.compress.quant.ptq import agreement  # noqa: E402
from ppzoo.compress.quant.spec import check_quant  # noqa: E402
from ppzoo.config import load_config  # noqa: E402
from ppzoo.data import build_dataloader  # noqa: E402
from ppzoo.deploy.export import export_model, export_settings  # noqa: E402
from ppzoo.deploy.predictor import Predictor, bf16_supported  # noqa: E402
from ppzoo.registry import build_from_arch  # noqa: E402
from ppzoo.utils.runtime import set_cpu_threads  # noqa: E402
from ppzoo.utils.timing import time_interleaved  # noqa: E402
from ppzoo.utils.weights import load_weights  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILY_CONFIG = {"shufflenet": "shufflenet_v1", "mobilenet_v1": "mobilenet_v1", "mobilenet_v2": "mobilenet_v2",
                 "alexnet": "alexnet"}
MODELS = ["shufflenet_v1_g3_x0_5", "mobilenet_v1_x0_5", "mobilenet_v2_x0_5", "alexnet"]


def config_for(arch, data, out_dir, weights, extra=()):
    family = next(v for k, v in FAMILY_CONFIG.items() if arch.startswith(k))
    overrides = [f"Arch.name={arch}", f"Global.output_dir={out_dir}", f"Global.pretrained_model={weights}",
                 *cifar10_overrides(data), "DataLoader.Train.loader.num_workers=0",
                 "DataLoader.Eval.loader.num_workers=0", *extra]
    return load_config(os.path.join(ROOT, "configs", "cifar10", family + ".yaml"), overrides, quiet=True)


def eval_arrays(cfg):
    loader = build_dataloader(cfg["DataLoader"]["Eval"], False, cfg["Arch"]["class_num"])
    xs, ys = [], []
    for x, y, _ in loader:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def predict(predictor, images, batch=250):
    return np.concatenate([predictor.run(images[i:i + batch]) for i in range(0, len(images), batch)])


def params_bytes(folder):
    meta = ppzoo.deploy.read_metadata(folder)
    return os.path.getsize(os.path.join(folder, meta["files"]["params"]))


def qat_finetune(arch, data, work, weights, images, threads):
    """1 epoch of QAT (abs-max quanters) through the ordinary trainer on ``images`` training images."""
    from ppzoo.engine import train

    lines = open(os.path.join(data, "train_10k_list.txt")).read().split("\n")
    lines = [line for line in lines if line.strip()]
    order = np.random.default_rng(0).permutation(len(lines))[:images]
    subset = os.path.join(work, "qat_list.txt")
    with open(subset, "w") as f:
        f.write("\n".join(lines[i] for i in order) + "\n")
    cfg = config_for(arch, data, os.path.join(work, "qat"), weights, [
        f"DataLoader.Train.dataset.cls_label_path={subset}", "Global.epochs=1", "Global.eval_during_train=False",
        "Optimizer.lr.learning_rate=0.002", "Optimizer.lr.warmup_epoch=0", f"Global.cpu_threads={threads}",
        "DataLoader.Train.sampler.batch_size=64", "Global.print_batch_step=10", "Slim.quant.name=qat"])
    start = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - start
    return cfg, os.path.join(work, "qat", arch, "final_model.pdparams"), seconds


def settings_at(cfg, size):
    s = export_settings(cfg)
    s["input_shape"] = [3, size, size]
    return s


def bench(arch, args, work):
    weights = os.path.join(args.artifacts, arch, "best_model.pdparams")
    cfg = config_for(arch, args.data, os.path.join(work, "run"), weights)
    trained = json.load(open(os.path.join(args.artifacts, arch, "metrics.json")))
    model = build_from_arch(cfg["Arch"], for_inference=True)
    load_weights(model, weights)
    model.eval()
    images, labels = eval_arrays(cfg)
    row = {"model": arch, "weights": weights, "trained_epochs": trained["epochs"],
           "trained_top1": trained["best"]["top1"], "eval_images": int(len(labels))}
    folders = {}
    # ---- accuracy at 32x32
    small = settings_at(cfg, 32)
    folders["fp32"] = os.path.join(work, arch, "fp32_32")
    export_model(model, folders["fp32"], **small)
    folders["fp16w"] = os.path.join(work, arch, "fp16w_32")
    export_model(model, folders["fp16w"], weights_dtype="float16", **small)
    calib = calibration_batches(cfg, args.calib_batches, 32)
    ptq_info = {}
    for algo in args.algos:
        folders[f"ptq_{algo}"] = os.path.join(work, arch, f"ptq_{algo}_32")
        start = time.perf_counter()
        meta = export_int8(model, folders[f"ptq_{algo}"], calib, arch=cfg["Arch"], settings=small, algo=algo,
                           calib_batch=32, threads=args.threads)
        ptq_info[algo] = {"seconds": time.perf_counter() - start, "onednn_ops": meta["quantization"]["onednn_ops"]}
    qat_cfg, qat_weights, qat_seconds = qat_finetune(arch, args.data, os.path.join(work, arch), weights,
                                                     args.qat_images, args.threads)
    quant = check_quant({"name": "qat"}, qat_cfg)
    qat_model = build_from_arch(cfg["Arch"], for_inference=True)
    wrap_for_qat(qat_model, quant)
    qat_model.set_state_dict(paddle.load(qat_weights))
    folders["qat"] = os.path.join(work, arch, "qat_int8_32")
    meta = export_int8(qat_model, folders["qat"], calib[:64], arch=cfg["Arch"], settings=small, qat=quant,
                       threads=args.threads)
    row["qat"] = {"fine_tune_images": args.qat_images, "epochs": 1, "seconds": qat_seconds,
                  "onednn_ops": meta["quantization"]["onednn_ops"]}
    row["ptq"] = ptq_info
    outputs = {}
    runs = {"fp32": ("fp32", "fp32"), "fp16w": ("fp16w", "fp32"), "bf16": ("fp32", "bf16"), "qat": ("qat", None),
            **{f"ptq_{a}": (f"ptq_{a}", None) for a in args.algos}}
    for key, (folder, precision) in runs.items():
        outputs[key] = predict(Predictor(folders[folder], threads=args.threads, precision=precision, quiet=True),
                               images)
    row["accuracy"] = {}
    for key, out in outputs.items():
        row["accuracy"][key] = {"top1": float(100.0 * np.mean(out.argmax(1) == labels)),
                                **agreement(out, outputs["fp32"])}
    row["params_bytes"] = {k: params_bytes(folders[k]) for k in ("fp32", "fp16w", f"ptq_{args.algos[0]}", "qat")}
    row["latency_ms"] = latency_224(model, qat_model, quant, cfg, calib, args, work, arch)
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    return row


def latency_224(model, qat_model, quant, cfg, calib, args, work, arch):
    """fp32 / bf16 / int8 PTQ (/ int8 QAT) predictors at 224x224, interleaved, medians."""
    big = settings_at(cfg, 224)
    lat = {"fp32": os.path.join(work, arch, "fp32_224"), "ptq": os.path.join(work, arch, "ptq_224"),
           "qat": os.path.join(work, arch, "qat_224")}
    export_model(model, lat["fp32"], verify=False, **big)
    # the 224x224 programs are for timing: calibrated on 16 upsampled images (the scales do not change the speed)
    n = args.latency_calib
    calib224 = paddle.nn.functional.interpolate(paddle.to_tensor(calib[:n]), size=[224, 224],
                                                mode="bilinear").numpy()
    export_int8(model, lat["ptq"], calib224, arch=cfg["Arch"], settings=big, algo=args.latency_algo, calib_batch=n,
                threads=args.threads)
    predictors = {"fp32": Predictor(lat["fp32"], threads=args.threads, precision="fp32"),
                  "bf16": Predictor(lat["fp32"], threads=args.threads, precision="bf16"),
                  "int8_ptq": Predictor(lat["ptq"], threads=args.threads)}
    if qat_model is not None:
        export_int8(qat_model, lat["qat"], calib224, arch=cfg["Arch"], settings=big, qat=quant, calib_batch=n,
                    threads=args.threads)
        predictors["int8_qat"] = Predictor(lat["qat"], threads=args.threads)
    out = {"params_bytes": {k: params_bytes(v) for k, v in lat.items() if os.path.isdir(v)}}
    for batch, repeat in ((1, args.repeat), (8, max(5, args.repeat // 2))):
        x = np.random.default_rng(0).standard_normal([batch, 3, 224, 224]).astype("float32")
        timings = time_interleaved({k: (lambda p=p: p.run(x)) for k, p in predictors.items()}, repeat, args.warmup)
        out[f"batch{batch}"] = {k: t.median * 1e3 for k, t in timings.items()}
        out[f"batch{batch}_runs"] = repeat
    for folder in lat.values():
        shutil.rmtree(folder, ignore_errors=True)
    return out


def bench_untrained(arch, args, work):
    """No checkpoint: random weights (BN statistics included), speed and size only."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from conftest import randomise_weights

    cfg = config_for(arch, args.data, os.path.join(work, "run"), "")
    model = randomise_weights(build_from_arch(cfg["Arch"], for_inference=True))
    calib = calibration_batches(cfg, 1, 16)
    row = {"model": arch, "weights": "random (no trained checkpoint)"}
    row["latency_ms"] = latency_224(model, None, None, cfg, calib, args, work, arch)
    return row


def print_row(row):
    lat = row["latency_ms"]
    print(f"\n{row['model']} ({row['weights']})")
    for key, a in row.get("accuracy", {}).items():
        print(f"  {key:12s} top1 {a['top1']:6.2f}%  agreement {a['top1_agreement']:6.2f}%  cosine {a['cosine']:.4f}")
    for key in ("params_bytes",):
        if key in row:
            print("  params bytes (32x32 exports): " + ", ".join(f"{k} {v:,}" for k, v in row[key].items()))
    print("  params bytes (224 exports): " + ", ".join(f"{k} {v:,}" for k, v in lat["params_bytes"].items()))
    for b in ("batch1", "batch8"):
        fp32 = lat[b]["fp32"]
        print(f"  {b}: " + ", ".join(f"{k} {v:.1f} ms ({fp32 / v:.2f}x)" for k, v in lat[b].items()))


def render(paths):
    """The markdown tables of docs/compression.md ("Measured") from result files."""
    rows = [m for p in paths for m in json.load(open(p))["models"] if "accuracy" in m]
    algos = list(dict.fromkeys(k for m in rows for k in m["accuracy"] if k.startswith("ptq_")))
    print("| model (CIFAR-10 epochs) | fp32 top-1 | bf16 | " + " | ".join(f"PTQ `{a[4:]}`" for a in algos)
          + " | QAT | PTQ `hist` agreement / cosine |")
    print("|---" * (len(algos) + 5) + "|")
    for m in rows:
        acc, fp32 = m["accuracy"], m["accuracy"]["fp32"]["top1"]
        cell = lambda k: f"{acc[k]['top1']:.2f} ({acc[k]['top1'] - fp32:+.2f})" if k in acc else "-"  # noqa: E731
        print(f"| {m['model']} ({m['trained_epochs']}) | {fp32:.2f} | {cell('bf16')} | "
              + " | ".join(cell(a) for a in algos) + f" | {cell('qat')} | "
              f"{acc['ptq_hist']['top1_agreement']:.1f} % / {acc['ptq_hist']['cosine']:.4f} |")
    print()
    print("| model | fp32 weights | int8 PTQ file (share) | fp16 file (share) | b1 fp32 ms | b1 bf16 | b1 int8 PTQ | "
          "b1 int8 QAT | b8 bf16 | b8 int8 PTQ | b8 int8 QAT |")
    print("|---" * 11 + "|")
    for m in rows:
        b, lat = m["params_bytes"], m["latency_ms"]
        x = lambda batch, k: f"{lat[batch]['fp32'] / lat[batch][k]:.2f}x"  # noqa: E731
        print(f"| {m['model']} | {b['fp32']:,} B | {100 * b['ptq_hist'] / b['fp32']:.1f} % | "
              f"{100 * b['fp16w'] / b['fp32']:.1f} % | {lat['batch1']['fp32']:.1f} | {x('batch1', 'bf16')} | "
              f"{x('batch1', 'int8_ptq')} | {x('batch1', 'int8_qat')} | {x('batch8', 'bf16')} | "
              f"{x('batch8', 'int8_ptq')} | {x('batch8', 'int8_qat')} |")


def main():
    if sys.argv[1:2] == ["--render"]:
        return render(sys.argv[2:]) or 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--artifacts", default="/work/artifacts/cifar10")
    parser.add_argument("--data", default="/work/shared/datasets/cifar10")
    parser.add_argument("--algos", nargs="+", default=["hist", "avg", "mse", "abs_max"])
    parser.add_argument("--latency-algo", default="abs_max")
    parser.add_argument("--latency-calib", type=int, default=16, help="calibration images of the 224x224 programs")
    parser.add_argument("--calib-batches", type=int, default=10)
    parser.add_argument("--qat-images", type=int, default=2560)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--untrained-speed", action="store_true",
                        help="models without a checkpoint: random weights, speed and size only")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    set_cpu_threads(args.threads)
    results = {"command": "python benchmarks/quant.py " + " ".join(sys.argv[1:]), "threads": args.threads,
               "bf16_supported": bf16_supported(), "paddle": paddle.__version__, "models": [], "skipped": {}}
    for arch in args.models:
        trained = os.path.isfile(os.path.join(args.artifacts, arch, "best_model.pdparams"))
        if not trained and not args.untrained_speed:
            results["skipped"][arch] = "no trained checkpoint yet"
            print(f"{arch}: skipped, no {args.artifacts}/{arch}/best_model.pdparams")
            continue
        with tempfile.TemporaryDirectory() as work:
            row = bench(arch, args, work) if trained else bench_untrained(arch, args, work)
        results["models"].append(row)
        print_row(row)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
