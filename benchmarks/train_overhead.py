"""What our training loop and data pipeline cost, measured in one run.

1. Loop overhead: ``ppzoo.engine.loop.train_one_epoch`` (NaN check, top-k accuracy,
   progress display, LR schedule) against a bare forward/backward/step loop, on the same
   model, optimizer and in-memory batches, interleaved; the medians give the overhead as a
   share of the bare step time (goal: under 10 %), repeated to show the spread. Model,
   optimizer, schedule, loss and batch come from the config (default: the main job,
   ``configs/shufflenet.yaml``). Then each piece of bookkeeping is timed alone, so that
   its cost is known without the noise of a whole step.
2. Data pipeline: images/s of the configured DataLoader alone (decode, augment, collate)
   against the images/s the model trains at, for the digits config and, when
   ../shared/datasets/cifar10 exists, the CIFAR-10 JPEG pipeline.

    python benchmarks/train_overhead.py                     # the main job: configs/shufflenet.yaml
    python benchmarks/train_overhead.py -o Arch.small_input=False --json out.json
"""
import argparse
import json
import logging
import math
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
from ppzoo.analysis import time_interleaved  # noqa: E402
from ppzoo.engine.builders import build_loss, build_lr_scheduler, build_model, build_optimizer  # noqa: E402
from ppzoo.engine.logger import Progress, ScalarWriter  # noqa: E402
from ppzoo.engine import ClassificationStep  # noqa: E402
from ppzoo.engine.loop import topk_correct, train_one_epoch  # noqa: E402
from ppzoo.utils.runtime import set_cpu_threads  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.environ.get("PPZOO_CIFAR10", os.path.join(ROOT, "..", "shared", "datasets", "cifar10"))


def loop_overhead(cfg, steps, rounds, repeats):
    """The main job's model, optimizer, LR schedule and loss (``cfg``), on in-memory batches."""
    model = build_model(cfg["Arch"])
    batch = cfg["DataLoader"]["Train"]["sampler"]["batch_size"]
    shape = cfg["Global"]["image_shape"]
    num_classes = cfg["Arch"]["class_num"]
    topk = cfg["Metric"]["Train"][0]["TopkAcc"]["topk"]
    rng = np.random.default_rng(0)
    batches = [(paddle.to_tensor(rng.standard_normal([batch, *shape]).astype("float32")),
                paddle.to_tensor(rng.integers(0, num_classes, [batch]).astype("int64")), 0) for _ in range(steps)]
    scheduler = build_lr_scheduler(cfg["Optimizer"]["lr"], 1000, steps)
    optimizer = build_optimizer(cfg["Optimizer"], model, scheduler)
    loss_fn = build_loss(cfg["Loss"]["Train"])
    quiet = logging.getLogger("ppzoo.bench")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    writer = ScalarWriter(None)  # what train.py passes with use_visualdl off
    on_step = lambda step, v: (writer.add("train/loss", v["loss"], step), writer.add("train/lr", v["lr"], step))  # noqa: E731

    def bare():
        model.train()
        for x, y, _ in batches:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            scheduler.step()

    def ours():
        progress = Progress(len(batches), "bench", quiet, every=cfg["Global"]["print_batch_step"])
        train_one_epoch(model, batches, ClassificationStep(loss_fn), optimizer, scheduler, topk=topk,
                        progress=progress, on_step=on_step)

    bare(), ours()  # warm-up
    runs = []
    for _ in range(repeats):
        times = {"bare": [], "ours": []}
        for _ in range(rounds):
            for name, fn in (("bare", bare), ("ours", ours)):
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) / steps)
        b, o = np.median(times["bare"]), np.median(times["ours"])
        runs.append({"bare_step_ms": b * 1e3, "ours_step_ms": o * 1e3, "overhead_pct": 100 * (o - b) / b})
    b = float(np.median([r["bare_step_ms"] for r in runs]))
    overheads = [r["overhead_pct"] for r in runs]
    return {"model": cfg["Arch"]["name"], "small_input": bool(getattr(model, "small_input", False)),
            "optimizer": cfg["Optimizer"]["name"], "batch": batch, "input": list(shape), "steps": steps,
            "rounds": rounds, "repeats": repeats, "runs": runs, "bare_step_ms": b,
            "ours_step_ms": float(np.median([r["ours_step_ms"] for r in runs])),
            "overhead_pct": float(np.median(overheads)), "overhead_pct_min": min(overheads),
            "overhead_pct_max": max(overheads), "model_images_per_s": batch / b * 1e3,
            "bookkeeping": bookkeeping_costs(model, batches[0], loss_fn, optimizer, topk, on_step, quiet)}


def bookkeeping_costs(model, batch, loss_fn, optimizer, topk, on_step, logger, repeat=300):
    """Median microseconds per step of each thing ``train_one_epoch`` does beyond the bare
    loop, timed alone in the same process (after the optimizer steps above), so that their
    sum can be set against the step time without the step's noise."""
    x, y, _ = batch
    model.train()
    logits = model(x).detach()
    logits.stop_gradient = False  # the losses below build their backward nodes, as in training
    correct = paddle.zeros([len(topk)])
    progress = Progress(10 ** 6, "bench", logger, every=10)
    state = {"step": 0}

    def autocast():
        with paddle.amp.auto_cast(enable=False, level="O1", use_promote=True):
            pass

    def progress_update():
        state["step"] += 1
        n = x.shape[0] * state["step"]
        progress.update(state["step"], n, loss=0.5, top1=f"{100.0 * float(correct[0]) / n:.2f}%")

    def accumulate():
        nonlocal correct
        correct += topk_correct(logits.detach(), y, topk)

    fns = {"auto_cast(enable=False) context": autocast,
           "configured loss (CELoss, summed)": lambda: loss_fn(logits, y),
           "F.cross_entropy (the bare loop's loss)": lambda: F.cross_entropy(logits, y),
           "float(loss) + isfinite": lambda: math.isfinite(float(F.cross_entropy(logits, y))),
           "top-k hits accumulated": accumulate,
           "on_step (get_lr, no-op VisualDL)": lambda: on_step(1, {"loss": 0.5, "lr": optimizer.get_lr()}),
           "progress.update (line every 10 steps)": progress_update}
    timings = time_interleaved(fns, repeat=repeat, warmup=10)
    us = {name: t.median * 1e6 for name, t in timings.items()}
    # float(loss) is timed with the loss it converts; only the conversion is extra
    us["float(loss) + isfinite"] -= us["F.cross_entropy (the bare loop's loss)"]
    us["configured loss (CELoss, summed)"] -= us["F.cross_entropy (the bare loop's loss)"]
    us.pop("F.cross_entropy (the bare loop's loss)")
    return {"us_per_step": us, "total_ms_per_step": sum(us.values()) / 1e3}


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
    parser.add_argument("-c", "--config", default=os.path.join(ROOT, "configs", "shufflenet.yaml"),
                        help="model, optimizer, schedule, loss and batch come from here (default: the main job)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="as in tools/train.py, e.g. -o Arch.small_input=False")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of each loop per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="independent overhead measurements (spread)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for Paddle")
    parser.add_argument("--json")
    args = parser.parse_args()
    paddle.set_device("cpu")
    threads = set_cpu_threads(args.threads)
    cfg = load_config(args.config, args.override)
    result = {"threads": threads, "paddle": paddle.__version__, "config": os.path.relpath(args.config, ROOT),
              "overrides": args.override}
    result["loop"] = loop_overhead(cfg, args.steps, args.rounds, args.repeats)
    loop = result["loop"]
    print(f"{loop['model']} (small_input={loop['small_input']}, {loop['optimizer']}), batch {loop['batch']} of "
          f"{loop['input']}, {threads} threads; {args.repeats} repeats of {args.rounds} interleaved rounds of "
          f"{args.steps} steps")
    for r in loop["runs"]:
        print(f"  bare loop {r['bare_step_ms']:.1f} ms/step, ours {r['ours_step_ms']:.1f} ms/step: overhead "
              f"{r['overhead_pct']:+.1f} %")
    print(f"  median overhead {loop['overhead_pct']:+.1f} % (range {loop['overhead_pct_min']:+.1f} to "
          f"{loop['overhead_pct_max']:+.1f} %)")
    book = loop["bookkeeping"]
    print(f"  bookkeeping timed alone: {book['total_ms_per_step']:.2f} ms/step = "
          f"{100 * book['total_ms_per_step'] / loop['bare_step_ms']:.2f} % of the bare step")
    for name, us in book["us_per_step"].items():
        print(f"    {name:40s} {us:8.1f} us")

    pipelines = {"digits (in memory, crop + normalize)": cfg["DataLoader"]["Train"]}
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
                           sampler=dict(section["sampler"], batch_size=loop["batch"]))
            speed = pipeline_speed(section, limit_batches=40)
            result["pipelines"].append({"pipeline": name, "workers": workers, "images_per_s": speed,
                                        "vs_model": speed / loop["model_images_per_s"],
                                        # with 0 workers loading is serial: this share of the training time
                                        "serial_share_pct": 100 * loop["model_images_per_s"] / speed})
            print(f"  {name}, {workers} workers: {speed:.0f} img/s = {speed / loop['model_images_per_s']:.1f}x "
                  f"what the model trains at ({loop['model_images_per_s']:.0f} img/s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
