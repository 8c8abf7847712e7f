"""``train(cfg)`` and ``evaluate_config(cfg)``: what tools/train.py and tools/eval.py run.

The functions here only wire the parts together (config sections -> builders -> loop ->
checkpoints and logs); each part lives in its own module and takes explicit arguments.
"""
import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import paddle
import paddle.distributed as dist

from ..analysis import count_params
from ..data import build_batch_transforms, build_dataloader
from ..runtime import select_device, set_cpu_threads
from ..weights import load_weights
from .builders import build_loss, build_lr_scheduler, build_model, build_optimizer
from .checkpoint import load_checkpoint, save_checkpoint
from .ema import ModelEMA
from ..fileio import write_json
from .logger import Progress, ScalarWriter, close_logger, format_seconds, setup_logger
from .loop import evaluate, train_one_epoch

__all__ = ["train", "evaluate_config", "output_dir_of"]


def output_dir_of(cfg: dict) -> str:
    """``Global.output_dir/<Arch.name>``, as PaddleClas lays it out."""
    return os.path.join(cfg["Global"]["output_dir"], cfg["Arch"]["name"])


@dataclass
class _Session:
    world: int
    rank: int
    device: str
    threads: int
    out_dir: str
    logger: logging.Logger


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _session(cfg: dict, log_name: Optional[str]):
    """Distributed environment, logger, device, threads and seeds for one run. While it
    lasts, ``kill`` (SIGTERM) ends the run like Ctrl-C, so finally-blocks run and saves
    complete; afterwards the log file is closed and the previous SIGTERM handler is back."""
    g = cfg["Global"]
    world = dist.get_world_size()
    if world > 1:
        dist.init_parallel_env()
    rank = dist.get_rank()
    out_dir = output_dir_of(cfg)
    logger = setup_logger(os.path.join(out_dir, log_name) if log_name else None, rank)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        device = select_device(g["device"], logger)
        threads = set_cpu_threads(g["cpu_threads"] or max(1, (os.cpu_count() or 1) // world)) if device == "cpu" else 0
        paddle.seed(g["seed"])
        np.random.seed(g["seed"])
        yield _Session(world, rank, device, threads, out_dir, logger)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        close_logger(logger)


def _topk(cfg: dict, key: str) -> list:
    """The k of ``Metric.<key>``'s TopkAcc, ascending (the config guarantees k = 1 is there)."""
    for entry in cfg["Metric"].get(key) or cfg["Metric"].get("Eval") or []:
        if "TopkAcc" in entry:
            return sorted(set(entry["TopkAcc"].get("topk", [1, 5])))
    return [1, 5]


def _amp(cfg: dict, device: str, logger):
    """AMP level and loss scaler on GPU; on CPU, say that AMP is off and why."""
    if "AMP" not in cfg or not cfg["AMP"]["use_amp"]:
        return None, None
    amp = cfg["AMP"]
    if not device.startswith("gpu"):
        logger.info("AMP: off on CPU (Paddle's CPU autocast is bfloat16-only and slower than float32 on most "
                    "CPUs); training in float32")
        return None, None
    scaler = paddle.amp.GradScaler(init_loss_scaling=amp["scale_loss"],
                                   use_dynamic_loss_scaling=amp["use_dynamic_loss_scaling"])
    return amp["level"], scaler


def train(cfg: dict, config_path: str = "CONFIG") -> dict:
    """Train as ``cfg`` says; returns the content of ``metrics.json``. ``config_path`` only
    appears in the closing "next command" line."""
    if "Train" not in cfg.get("DataLoader", {}):
        raise ValueError("training needs a DataLoader.Train section")
    if "Optimizer" not in cfg:
        raise ValueError("training needs an Optimizer section")
    with _session(cfg, "train.log") as run:
        return _train(cfg, run, config_path)


def _train(cfg: dict, run: _Session, config_path: str) -> dict:
    g, logger, out_dir = cfg["Global"], run.logger, run.out_dir
    arch, num_classes = cfg["Arch"]["name"], cfg["Arch"]["class_num"]
    model = build_model(cfg["Arch"])
    if g["pretrained_model"]:
        skipped = load_weights(model, g["pretrained_model"], skip_mismatched_classifier=True)
        logger.info(f"loaded weights from {g['pretrained_model']}"
                    + (f"; kept a new {num_classes}-class classifier ({', '.join(skipped)} had another size)"
                       if skipped else ""))
    train_loader = build_dataloader(cfg["DataLoader"]["Train"], True, num_classes, run.world, run.rank)
    eval_loader = None
    if g["eval_during_train"] and "Eval" in cfg["DataLoader"]:
        eval_loader = build_dataloader(cfg["DataLoader"]["Eval"], False, num_classes, run.world, run.rank)
    batch_transforms = build_batch_transforms(cfg["DataLoader"]["Train"])

    opt_cfg, epochs = cfg["Optimizer"], g["epochs"]
    global_batch = cfg["DataLoader"]["Train"]["sampler"]["batch_size"] * run.world
    scale = global_batch / opt_cfg["base_batch_size"] if opt_cfg.get("base_batch_size") else 1.0
    scheduler = build_lr_scheduler(opt_cfg["lr"], epochs, len(train_loader), scale)
    optimizer = build_optimizer(opt_cfg, model, scheduler)
    amp_level, scaler = _amp(cfg, run.device, logger)
    amp_promote = cfg.get("AMP", {}).get("use_promote", True)
    if amp_level == "O2":
        model, optimizer = paddle.amp.decorate(model, optimizer, level="O2")
    ema = ModelEMA(model, cfg["EMA"]["decay"]) if "EMA" in cfg else None

    start_epoch, best, history, elapsed_before = 1, {"top1": None, "epoch": None}, [], 0.0
    if g["checkpoints"]:
        meta = load_checkpoint(g["checkpoints"], model, optimizer, ema, scaler, arch=arch)
        start_epoch, best, history = meta["epoch"] + 1, meta["best"], meta["history"]
        elapsed_before = meta.get("wall_time_s", 0.0)
        logger.info(f"resumed from {g['checkpoints']} at the end of epoch {meta['epoch']}")
        if start_epoch > epochs:
            raise ValueError(f"{g['checkpoints']} already finished epoch {meta['epoch']} of Global.epochs={epochs}; "
                             "raise Global.epochs to train further")

    train_model = paddle.DataParallel(model) if run.world > 1 else model
    train_loss, eval_loss = build_loss(cfg["Loss"]["Train"]), build_loss(cfg["Loss"].get("Eval") or cfg["Loss"]["Train"])
    topk = _topk(cfg, "Train")
    logger.info(f"{arch}: {count_params(model) / 1e6:.3f} M params, {num_classes} classes | "
                f"{len(train_loader.dataset)} train / {len(eval_loader.dataset) if eval_loader else 0} eval images | "
                f"device {run.device}{f' ({run.threads} threads)' if run.threads else ''}, {run.world} process(es), "
                f"global batch {global_batch}, {len(train_loader)} steps/epoch | output {out_dir}")

    writer = ScalarWriter(os.path.join(out_dir, "vdl") if g["use_visualdl"] and run.rank == 0 else None)
    started, summary, seed = time.perf_counter(), {}, g["seed"]
    try:
        for epoch in range(start_epoch, epochs + 1):
            train_loader.batch_sampler.set_epoch((seed * 1_000_003 + epoch) % 2 ** 32)
            train_loader.dataset.set_epoch(epoch, seed)
            progress = Progress(len(train_loader), f"epoch {epoch}/{epochs}", logger, g["print_batch_step"],
                                enabled=run.rank == 0)
            step_base = (epoch - 1) * len(train_loader)
            stats = train_one_epoch(
                train_model, train_loader, train_loss, optimizer, scheduler, num_classes=num_classes, topk=topk,
                progress=progress, batch_transforms=batch_transforms,
                rng=np.random.default_rng([seed, epoch, run.rank]), ema=ema, scaler=scaler, amp_level=amp_level,
                amp_promote=amp_promote,
                on_step=lambda step, v: (writer.add("train/loss", v["loss"], step_base + step),
                                         writer.add("train/lr", v["lr"], step_base + step)))
            record = {"epoch": epoch, "train": stats, "lr": optimizer.get_lr()}
            line = (f"epoch {epoch}/{epochs} train loss {stats['loss']:.4f} top1 {stats['top1']:.2f}% "
                    f"{stats['images_per_s']:.0f} img/s ({format_seconds(stats['seconds'])})")
            if stats["skipped"]:
                line += f", skipped {stats['skipped']} unreadable images"
            improved = False
            if eval_loader is not None and (epoch % g["eval_interval"] == 0 or epoch == epochs):
                ev = evaluate(ema.module if ema else model, eval_loader, eval_loss, topk,
                              amp_level if cfg.get("AMP", {}).get("use_fp16_test") else None, amp_promote)
                record["eval"] = ev
                improved = best["top1"] is None or ev["top1"] > best["top1"]
                if improved:
                    best = {"top1": ev["top1"], f"top{topk[-1]}": ev[f"top{topk[-1]}"], "epoch": epoch}
                line += (f" | eval loss {ev['loss']:.4f} top1 {ev['top1']:.2f}%"
                         + (f" top{topk[-1]} {ev[f'top{topk[-1]}']:.2f}%" if len(topk) > 1 else "")
                         + (" (best)" if improved else f" (best {best['top1']:.2f}% at epoch {best['epoch']})"))
            history.append(record)
            if run.rank != 0:
                continue
            logger.info(line)
            for key in ("loss", "top1", "images_per_s"):
                writer.add(f"train/epoch_{key}", stats[key], epoch)
            for key, value in record.get("eval", {}).items():
                if key.startswith("top") or key == "loss":
                    writer.add(f"eval/{key}", value, epoch)
            wall = elapsed_before + time.perf_counter() - started
            meta = {"arch": arch, "epoch": epoch, "global_step": epoch * len(train_loader), "best": best,
                    "history": history, "wall_time_s": wall}
            save_checkpoint(os.path.join(out_dir, "latest"), model, optimizer, ema, scaler, meta)
            if epoch % g["save_interval"] == 0:
                save_checkpoint(os.path.join(out_dir, f"epoch_{epoch}"), model, optimizer, ema, scaler, meta)
            if improved:
                save_checkpoint(os.path.join(out_dir, "best_model"), ema.module if ema else model, weights_only=True)
            summary = _metrics(arch, history, best, wall, out_dir)
            write_json(os.path.join(out_dir, "metrics.json"), summary)
    finally:
        writer.close()
    if run.rank == 0:
        _log_summary(logger, config_path, summary, out_dir)
    return summary


def _metrics(arch: str, history: list, best: dict, wall: float, out_dir: str) -> dict:
    last = history[-1]
    speeds = [h["train"]["images_per_s"] for h in history]
    return {
        "arch": arch,
        "best": best,
        "last": {"epoch": last["epoch"], **last.get("eval", {})},
        "epochs": last["epoch"],
        "wall_time_s": wall,
        "train_images_per_s": float(np.median(speeds)),
        "output_dir": out_dir,
        "history": history,
    }


def _log_summary(logger, config: str, summary: dict, out_dir: str) -> None:
    best = summary["best"]
    weights = os.path.join(out_dir, "best_model" if best["top1"] is not None else "latest")
    result = (f"best validation top-1 {best['top1']:.2f}% at epoch {best['epoch']}" if best["top1"] is not None
              else "no evaluation was run")
    logger.info(
        f"Done: {summary['epochs']} epochs of {summary['arch']} in {format_seconds(summary['wall_time_s'])} "
        f"({summary['train_images_per_s']:.0f} train img/s); {result}. Weights: {weights}.pdparams; resume "
        f"checkpoint: {os.path.join(out_dir, 'latest')}.pdckpt; log and figures: "
        f"{os.path.join(out_dir, 'train.log')}, {os.path.join(out_dir, 'metrics.json')}. Next: python tools/eval.py "
        f"-c {config} -o Global.pretrained_model={weights}")


def evaluate_config(cfg: dict) -> dict:
    """Evaluate ``Global.pretrained_model`` (or the weights a ``Global.checkpoints`` run
    evaluated with: its EMA average when it kept one) on ``DataLoader.Eval``; returns
    loss and top-k figures."""
    g = cfg["Global"]
    if "Eval" not in cfg.get("DataLoader", {}):
        raise ValueError("evaluation needs a DataLoader.Eval section")
    weights = g["pretrained_model"] or g["checkpoints"]
    if not weights:
        raise ValueError("nothing to evaluate: set -o Global.pretrained_model=PATH (a .pdparams file or prefix)")
    with _session(cfg, None) as run:
        arch, num_classes = cfg["Arch"]["name"], cfg["Arch"]["class_num"]
        model = build_model(cfg["Arch"])
        if g["pretrained_model"]:
            load_weights(model, g["pretrained_model"])
        else:
            load_checkpoint(g["checkpoints"], model, arch=arch, weights_only=True)
        loader = build_dataloader(cfg["DataLoader"]["Eval"], False, num_classes, run.world, run.rank)
        start = time.perf_counter()
        result = evaluate(model, loader, build_loss(cfg["Loss"].get("Eval") or cfg["Loss"]["Train"]), _topk(cfg, "Eval"))
    result.update({"arch": arch, "weights": weights, "seconds": time.perf_counter() - start})
    return result
