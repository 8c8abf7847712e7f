"""What our training loop and data pipeline cost, measured in one run.

1. Loop overhead: ``ppzoo.engine.loop.train_one_epoch`` (NaN check, top-k accuracy,
   progress display, LR schedule) against a bare forward/backward/step loop, on the same
   model, optimizer and in-memory batches, interleaved; the medians give the overhead as a
   share of the bare step time (goal: under 10 %).
2. Data pipeline: images/s of the configured DataLoader alone (decode, augment, collate)
   against the images/s the model trains at, for the digits config and, when
   ../shared/datasets/cifar10 exists, the CIFAR-10 JPEG pipeline.

    python benchmarks/train_overhead.py                     # ShuffleNetV1 1x g3, batch 32, 32x32
    python benchmarks/train_overhead.py --model mobilenet_v2_x1_0 --json out.json
"""
import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402  (first: it silences paddle's import-time warnings)
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from ppzoo.config import load_config  # noqa: E402
from ppzoo.data import build_dataloader  # noqa: E402
from ppzoo.engine.builders import build_loss, build_lr_scheduler, build_optimizer  # noqa: E402
from ppzoo.engine.logger import Progress  # noqa: E402
from ppzoo.engine import ClassificationStep  # noqa: E402
from ppzoo.engine.loop import train_one_epoch  # noqa: E402
from ppzoo.utils.runtime import set_cpu_threads  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.environ.get("PPZOO_CIFAR10", os.path.join(ROOT, "..", "shared", "datasets", "cifar10"))


def loop_overhead(cfg, model_name, steps, rounds, batch):
    model = ppzoo.create_model(model_name, num_classes=10, **({"small_input": True} if cfg["small"] else {}))
    rng = np.random.default_rng(0)
    batches = [(paddle.to_tensor(rng.standard_normal([batch, 3, 32, 32]).astype("float32")),
                paddle.to_tensor(rng.integers(0, 10, [batch]).astype("int64")), 0) for _ in range(steps)]
    opt_cfg = load_config(os.path.join(ROOT, "configs", "shufflenet.yaml"))["Optimizer"]
    scheduler = build_lr_scheduler(opt_cfg["lr"], 1000, steps)
    optimizer = build_optimizer(opt_cfg, model, scheduler)
    loss_fn = build_loss([{"CELoss": {"weight": 1.0}}])
    quiet = logging.getLogger("ppzoo.bench")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False

    def bare():
        model.train()
        for x, y, _ in batches:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            scheduler.step()

    def ours():
        progress = Progress(len(batches), "bench", quiet, every=10)
        train_one_epoch(model, batches, ClassificationStep(loss_fn), optimizer, scheduler, topk=[1, 5],
                        progress=progress)

    bare(), ours()  # warm-up
    times = {"bare": [], "ours": []}
    for _ in range(rounds):
        for name, fn in (("bare", bare), ("ours", ours)):
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / steps)
    b, o = np.median(times["bare"]), np.median(times["ours"])
    return {"model": model_name, "batch": batch, "steps": steps, "rounds": rounds, "bare_step_ms": b * 1e3,
            "ours_step_ms": o * 1e3, "overhead_pct": 100 * (o - b) / b, "model_images_per_s": batch / b}


def pipeline_speed(section, limit_batches):
    loader = build_dataloader(section, train=True, num_classes=10)
    loader.dataset.set_epoch(1)
    start, images = time.perf_counter(), 0
    for i, (x, _, _) in enumerate(loader):
        images += x.shape[0]
        if i + 1 >= limit_batches:
            break
    return images / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shufflenet_v1_g3_x1_0")
    parser.add_argument("--small-input", action="store_true", help="build the model in small-input mode")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of each loop")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for Paddle")
    parser.add_argument("--json")
    args = parser.parse_args()
    paddle.set_device("cpu")
    threads = set_cpu_threads(args.threads)
    result = {"threads": threads, "paddle": paddle.__version__}
    result["loop"] = loop_overhead({"small": args.small_input}, args.model, args.steps, args.rounds, args.batch)
    loop = result["loop"]
    print(f"{args.model} batch {args.batch}, {threads} threads, medians of {args.rounds} interleaved rounds of "
          f"{args.steps} steps")
    print(f"  bare loop {loop['bare_step_ms']:.1f} ms/step, ours {loop['ours_step_ms']:.1f} ms/step: overhead "
          f"{loop['overhead_pct']:+.1f} % of the step")

    pipelines = {"digits (in memory, crop + normalize)": load_config(
        os.path.join(ROOT, "configs", "shufflenet.yaml"))["DataLoader"]["Train"]}
    if os.path.isdir(CIFAR):
        section = load_config(os.path.join(ROOT, "configs", "cifar10", "shufflenet_v1.yaml"), [
            f"DataLoader.Train.dataset.image_root={CIFAR}",
            f"DataLoader.Train.dataset.cls_label_path={CIFAR}/train_10k_list.txt",
            f"DataLoader.Eval.dataset.image_root={CIFAR}",
            f"DataLoader.Eval.dataset.cls_label_path={CIFAR}/test_2k_list.txt",
            f"DataLoader.Eval.dataset.class_names_path={CIFAR}/labels.txt"])["DataLoader"]["Train"]
        pipelines["CIFAR-10 JPEG (decode, pad-crop, flip, normalize)"] = section
    result["pipelines"] = []
    for name, section in pipelines.items():
        for workers in (0, 2):
            section = dict(section, loader=dict(section["loader"], num_workers=workers),
                           sampler=dict(section["sampler"], batch_size=args.batch))
            speed = pipeline_speed(section, limit_batches=40)
            result["pipelines"].append({"pipeline": name, "workers": workers, "images_per_s": speed,
                                        "vs_model": speed / loop["model_images_per_s"]})
            print(f"  {name}, {workers} workers: {speed:.0f} img/s = {speed / loop['model_images_per_s']:.1f}x "
                  f"what the model trains at ({loop['model_images_per_s']:.0f} img/s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
