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
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import paddle
import paddle.distributed as dist

from ..compress import training_parts
from ..config import ConfigError
from ..data import build_batch_transforms, build_dataloader, make_batch_transform
from ..registry import build_from_arch
from ..utils.fileio import deferred_signals, json_writer, recover, write_together
from ..utils.hooks import HookList
from ..utils.params import count_params
from ..utils.runlock import RunLock
from ..utils.runtime import select_device, set_cpu_threads
from ..utils.weights import load_weights
from .builders import build_loss, build_lr_scheduler, build_model, build_optimizer
from .checkpoint import checkpoint_files, load_checkpoint, save_checkpoint
from .ema import EMAHook
from .logger import Progress, ScalarWriter, close_logger, format_seconds, log_to_file, setup_logger
from .loop import AmpSettings, evaluate, train_one_epoch

__all__ = ["train", "build_run", "fit", "Run", "evaluate_config", "output_dir_of"]


def output_dir_of(cfg: dict) -> str:
    """``Global.output_dir/<Arch.name>``, as PaddleClas lays it out; an architecture file
    (``x/pruned.arch.json``) is named by its file name without the suffix (``pruned``)."""
    name = cfg["Arch"]["name"]
    if name.endswith(".json") or os.sep in name:
        name = os.path.basename(name)
        name = name[:-len(".arch.json")] if name.endswith(".arch.json") else os.path.splitext(name)[0]
    return os.path.join(cfg["Global"]["output_dir"], name)


@dataclass
class _Session:
    world: int
    rank: int
    device: str
    threads: int
    out_dir: str
    logger: logging.Logger
    epoch: Optional[int] = None  # the epoch being trained
    saved_epoch: Optional[int] = None  # the last epoch whose files this run wrote


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _session(cfg: dict, log_name: Optional[str]):
    """Distributed environment, logger, device, threads and seeds for one run. While it
    lasts, ``kill`` (SIGTERM) ends the run like Ctrl-C, so finally-blocks run and saves
    complete; afterwards the log file is closed and the previous SIGTERM handler is back.

    A training run (``log_name`` given) holds the output folder's :class:`RunLock` from
    before its log is opened to the end, finishes a save a ``kill -9`` cut short and
    removes stale temporary files; its log ends with the error or "interrupted" line."""
    g = cfg["Global"]
    world = dist.get_world_size()
    if world > 1:
        dist.init_parallel_env()
    rank = dist.get_rank()
    out_dir = output_dir_of(cfg)
    lock = RunLock(out_dir).acquire() if log_name and rank == 0 else None  # before anything is written
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    logger, session = None, None
    try:
        logger = setup_logger(os.path.join(out_dir, log_name) if log_name else None, rank)
        if lock is not None:
            _recover(out_dir, lock, logger)
        device = select_device(g["device"], logger)
        threads = set_cpu_threads(g["cpu_threads"] or max(1, (os.cpu_count() or 1) // world)) if device == "cpu" else 0
        paddle.seed(g["seed"])
        np.random.seed(g["seed"])
        session = _Session(world, rank, device, threads, out_dir, logger)
        yield session
    except KeyboardInterrupt:
        if log_name and logger is not None:
            logger.info(_interrupted_line(session, out_dir))
        raise
    except Exception as e:
        if log_name and logger is not None:
            log_to_file(logger, e)
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if logger is not None:
            close_logger(logger)
        if lock is not None:
            lock.release()


def _recover(out_dir: str, lock: RunLock, logger) -> None:
    stale = lock.describe_stale()
    if stale:
        logger.info(stale)
    completed, removed = recover(out_dir)
    if completed:
        logger.info(f"completed the save that a killed run had committed: {', '.join(completed)}")
    if removed:
        logger.info(f"removed temporary files of a killed run: {', '.join(removed)}")


def _interrupted_line(session: Optional["_Session"], out_dir: str) -> str:
    """What was saved when a run is stopped by Ctrl-C or SIGTERM, and how to go on."""
    during = f" during epoch {session.epoch}" if session is not None and session.epoch else ""
    latest = os.path.join(out_dir, "latest")
    if session is not None and session.saved_epoch:
        return (f"interrupted{during}; epoch {session.saved_epoch} is saved complete (latest.pdckpt, metrics.json, "
                f"best weights): resume with -o Global.checkpoints={latest}")
    if os.path.isfile(latest + ".pdckpt"):
        return (f"interrupted{during} before this run finished an epoch; {latest}.pdckpt is from an earlier run: "
                f"resume with -o Global.checkpoints={latest}")
    return f"interrupted{during} before the first epoch finished; nothing was saved"


def _topk(cfg: dict, key: str) -> list:
    """The k of ``Metric.<key>``'s TopkAcc, ascending (the config guarantees k = 1 is there)."""
    for entry in cfg["Metric"].get(key) or cfg["Metric"].get("Eval") or []:
        for name, params in entry.items():
            if name.endswith("TopkAcc"):  # TopkAcc, or a training method's (DistillationTopkAcc)
                return sorted(set((params or {}).get("topk", [1, 5])))
    return [1, 5]


def _amp(cfg: dict, device: str, logger) -> Optional[AmpSettings]:
    """AMP level and loss scaler on GPU; on CPU, say that AMP is off and why."""
    if "AMP" not in cfg or not cfg["AMP"]["use_amp"]:
        return None
    amp = cfg["AMP"]
    if not device.startswith("gpu"):
        logger.info("AMP: off on CPU (Paddle's CPU autocast is bfloat16-only and slower than float32 on most "
                    "CPUs); training in float32")
        return None
    scaler = paddle.amp.GradScaler(init_loss_scaling=amp["scale_loss"],
                                   use_dynamic_loss_scaling=amp["use_dynamic_loss_scaling"])
    return AmpSettings(amp["level"], scaler, amp["use_promote"])


@dataclass
class Run:
    """Everything one training run needs, built by :func:`build_run` and consumed by
    :func:`fit`. Replace ``step_fn`` or extend ``hooks`` between the two to customise
    training through the public API."""

    cfg: dict
    session: _Session
    model: paddle.nn.Layer  # the trained model, unwrapped
    step_fn: Callable
    hooks: HookList
    optimizer: paddle.optimizer.Optimizer
    scheduler: object
    train_loader: object
    eval_loader: Optional[object]
    eval_loss: Callable
    topk: list
    amp: Optional[AmpSettings]
    batch_ops: list
    start_epoch: int = 1
    best: dict = field(default_factory=lambda: {"top1": None, "epoch": None})
    history: list = field(default_factory=list)
    elapsed_before: float = 0.0
    config_path: str = "CONFIG"
    train_model: Optional[paddle.nn.Layer] = None  # what the step runs: the model or its DataParallel wrapper

    def __post_init__(self):
        if self.train_model is None:
            self.train_model = paddle.DataParallel(self.model) if self.session.world > 1 else self.model


def build_run(cfg: dict, session: _Session, step_fn: Optional[Callable] = None, hooks: Sequence = (),
              config_path: str = "CONFIG") -> Run:
    """Model (with ``Global.pretrained_model``), loaders, step function, hooks (the
    config's training methods, EMA, then ``hooks``), optimizer, LR schedule and the state
    of ``Global.checkpoints``. ``step_fn`` overrides the one the config implies."""
    g, logger = cfg["Global"], session.logger
    num_classes = cfg["Arch"]["class_num"]
    model = build_model(cfg["Arch"])
    if g["pretrained_model"]:
        skipped = load_weights(model, g["pretrained_model"], skip_mismatched_classifier=True)
        logger.info(f"loaded weights from {g['pretrained_model']}"
                    + (f"; kept a new {num_classes}-class classifier ({', '.join(skipped)} had another size)"
                       if skipped else ""))
    train_loader = build_dataloader(cfg["DataLoader"]["Train"], True, num_classes, session.world, session.rank)
    eval_loader = None
    if g["eval_during_train"] and "Eval" in cfg["DataLoader"]:
        eval_loader = build_dataloader(cfg["DataLoader"]["Eval"], False, num_classes, session.world, session.rank)
    train_loss = build_loss(cfg["Loss"]["Train"])
    parts = training_parts(cfg, model, train_loss)
    opt_cfg = cfg["Optimizer"]
    global_batch = cfg["DataLoader"]["Train"]["sampler"]["batch_size"] * session.world
    scale = global_batch / opt_cfg["base_batch_size"] if opt_cfg.get("base_batch_size") else 1.0
    scheduler = build_lr_scheduler(opt_cfg["lr"], g["epochs"], len(train_loader), scale)
    model_hooks = getattr(model, "training_hooks", None)  # what the model's own layers need (dynamic conv)
    all_hooks = (list(model_hooks(len(train_loader), g["epochs"]) if callable(model_hooks) else []) + list(parts.hooks)
                 + ([EMAHook(cfg["EMA"]["decay"])] if "EMA" in cfg else [])
                 + list(getattr(scheduler, "training_hooks", [])) + list(hooks))  # ReduceOnPlateau's observer
    hook_list = HookList(all_hooks)
    needs_eval = [h.needs_eval for h in hook_list.hooks if getattr(h, "needs_eval", None)]
    if needs_eval and eval_loader is None:
        raise ConfigError(f"{needs_eval[0]}, but this run never evaluates: give it a DataLoader.Eval section and "
                          "Global.eval_during_train: true, or monitor train_loss", key="Optimizer.lr")
    model = hook_list.prepare(model)

    optimizer = build_optimizer(opt_cfg, model, scheduler)
    amp = _amp(cfg, session.device, logger)
    if amp is not None and amp.level == "O2":
        model, optimizer = paddle.amp.decorate(model, optimizer, level="O2")
    run = Run(cfg, session, model, step_fn or parts.step_fn, hook_list, optimizer, scheduler, train_loader,
              eval_loader, build_loss(cfg["Loss"].get("Eval") or cfg["Loss"]["Train"]), _topk(cfg, "Train"), amp,
              build_batch_transforms(cfg["DataLoader"]["Train"]), config_path=config_path)
    if g["checkpoints"]:
        _resume(run)
    return run


def _resume(run: Run) -> None:
    g, epochs = run.cfg["Global"], run.cfg["Global"]["epochs"]
    meta = load_checkpoint(g["checkpoints"], run.model, run.optimizer, run.amp.scaler if run.amp else None,
                           run.hooks, arch=run.cfg["Arch"]["name"])
    run.start_epoch, run.best, run.history = meta["epoch"] + 1, meta["best"], meta["history"]
    run.elapsed_before = meta.get("wall_time_s", 0.0)
    run.session.logger.info(f"resumed from {g['checkpoints']} at the end of epoch {meta['epoch']}")
    if run.start_epoch > epochs:
        raise ValueError(f"{g['checkpoints']} already finished epoch {meta['epoch']} of Global.epochs={epochs}; "
                         "raise Global.epochs to train further")


def train(cfg: dict, config_path: str = "CONFIG", step_fn: Optional[Callable] = None, hooks: Sequence = ()) -> dict:
    """Train as ``cfg`` says; returns the content of ``metrics.json``. ``config_path`` only
    appears in the closing "next command" line; ``step_fn`` and ``hooks`` customise the
    run (see :func:`build_run`)."""
    if "Train" not in cfg.get("DataLoader", {}):
        raise ValueError("training needs a DataLoader.Train section")
    if "Optimizer" not in cfg:
        raise ValueError("training needs an Optimizer section")
    with _session(cfg, "train.log") as session:
        return fit(build_run(cfg, session, step_fn, hooks, config_path))


def fit(run: Run) -> dict:
    """Train ``run`` from its start epoch to ``Global.epochs``: epochs, evaluation, logs,
    checkpoints and ``metrics.json``; returns the metrics."""
    g, session = run.cfg["Global"], run.session
    writer = ScalarWriter(os.path.join(session.out_dir, "vdl") if g["use_visualdl"] and session.rank == 0 else None)
    _log_start(run)
    started, summary = time.perf_counter(), {}
    try:
        for epoch in range(run.start_epoch, g["epochs"] + 1):
            session.epoch = epoch
            record, best_model = _epoch(run, epoch, writer)
            if session.rank == 0:
                with deferred_signals():  # a Ctrl-C here lands after the files and the note that they exist
                    summary = _save_epoch(run, epoch, best_model, run.elapsed_before + time.perf_counter() - started)
                    session.saved_epoch = epoch
        if run.hooks.finalizes:
            run.model = run.hooks.finalize(run.model)
            if session.rank == 0:
                save_checkpoint(os.path.join(session.out_dir, "final_model"), run.model, weights_only=True)
    finally:
        writer.close()
    if session.rank == 0:
        _log_summary(session.logger, run.config_path, summary, session.out_dir)
    return summary


def _log_start(run: Run) -> None:
    s, cfg = run.session, run.cfg
    global_batch = cfg["DataLoader"]["Train"]["sampler"]["batch_size"] * s.world
    hooks = ", ".join(HookList._name(h) for h in run.hooks.hooks)
    threads = f" ({s.threads} thread{'s' if s.threads > 1 else ''})" if s.threads else ""
    s.logger.info(f"{cfg['Arch']['name']}: {count_params(run.model) / 1e6:.3f} M params, {cfg['Arch']['class_num']} "
                  f"classes | {len(run.train_loader.dataset)} train / "
                  f"{len(run.eval_loader.dataset) if run.eval_loader else 0} eval images | device {s.device}"
                  f"{threads}, {s.world} process(es), global batch "
                  f"{global_batch}, {len(run.train_loader)} steps/epoch" + (f" | hooks: {hooks}" if hooks else "")
                  + f" | output {s.out_dir}")


def _epoch(run: Run, epoch: int, writer: ScalarWriter):
    """Train one epoch and evaluate when due; returns the record and the evaluated model
    when it is the best so far (else ``None``)."""
    g, s = run.cfg["Global"], run.session
    epochs, seed, loader = g["epochs"], g["seed"], run.train_loader
    loader.batch_sampler.set_epoch((seed * 1_000_003 + epoch) % 2 ** 32)
    loader.dataset.set_epoch(epoch, seed)
    step_base = (epoch - 1) * len(loader)
    run.hooks.before_epoch(run.model, epoch)
    stats = train_one_epoch(
        run.train_model, loader, run.step_fn, run.optimizer,
        run.scheduler, run.hooks, topk=run.topk, first_step=step_base + 1, amp=run.amp,
        progress=Progress(len(loader), f"epoch {epoch}/{epochs}", s.logger, g["print_batch_step"],
                          enabled=s.rank == 0),
        batch_transform=make_batch_transform(run.batch_ops, run.cfg["Arch"]["class_num"],
                                             np.random.default_rng([seed, epoch, s.rank])),
        on_step=lambda step, v: (writer.add("train/loss", v["loss"], step), writer.add("train/lr", v["lr"], step)))
    record = {"epoch": epoch, "train": stats, "lr": run.optimizer.get_lr()}
    line = (f"epoch {epoch}/{epochs} train loss {stats['loss']:.4f} top1 {stats['top1']:.2f}% "
            f"{stats['images_per_s']:.0f} img/s ({format_seconds(stats['seconds'])})")
    if stats["skipped"]:
        line += f", skipped {stats['skipped']} unreadable images"
    best_model, best, topk = None, run.best, run.topk
    if run.eval_loader is not None and (epoch % g["eval_interval"] == 0 or epoch == epochs):
        eval_amp = run.amp if run.cfg.get("AMP", {}).get("use_fp16_test") else None
        eval_model = run.hooks.before_eval(run.model)
        ev = evaluate(eval_model, run.eval_loader, run.eval_loss, topk, eval_amp)
        record["eval"] = ev
        improved = best["top1"] is None or ev["top1"] > best["top1"]
        if improved:
            run.best = best = {"top1": ev["top1"], f"top{topk[-1]}": ev[f"top{topk[-1]}"], "epoch": epoch}
            best_model = eval_model
        line += (f" | eval loss {ev['loss']:.4f} top1 {ev['top1']:.2f}%"
                 + (f" top{topk[-1]} {ev[f'top{topk[-1]}']:.2f}%" if len(topk) > 1 else "")
                 + (" (best)" if improved else f" (best {best['top1']:.2f}% at epoch {best['epoch']})"))
    run.history.append(record)
    run.hooks.after_epoch(run.model, epoch, record)
    if s.rank == 0:
        s.logger.info(line)
        for key in ("loss", "top1", "images_per_s"):
            writer.add(f"train/epoch_{key}", stats[key], epoch)
        for key, value in record.get("eval", {}).items():
            if key.startswith("top") or key == "loss":
                writer.add(f"eval/{key}", value, epoch)
    return record, best_model


def _save_epoch(run: Run, epoch: int, best_model, wall: float) -> dict:
    """Checkpoints (latest, every save_interval, best weights) and metrics.json, written
    as one unit: a signal waits until all are written, a ``kill -9`` leaves all old or
    (after the next start's recovery) all new."""
    g, out_dir, arch = run.cfg["Global"], run.session.out_dir, run.cfg["Arch"]["name"]
    meta = {"arch": arch, "epoch": epoch, "global_step": epoch * len(run.train_loader), "best": run.best,
            "history": run.history, "wall_time_s": wall}
    state = dict(model=run.model, optimizer=run.optimizer, scaler=run.amp.scaler if run.amp else None,
                 hooks=run.hooks, meta=meta)
    files = checkpoint_files(os.path.join(out_dir, "latest"), **state)
    if epoch % g["save_interval"] == 0:
        files += checkpoint_files(os.path.join(out_dir, f"epoch_{epoch}"), **state)
    if best_model is not None:
        files += checkpoint_files(os.path.join(out_dir, "best_model"), best_model, weights_only=True)
    summary = _metrics(arch, run.history, run.best, wall, out_dir)
    files.append((os.path.join(out_dir, "metrics.json"), json_writer(summary)))
    write_together(files)
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
    has_best = best["top1"] is not None and os.path.isfile(os.path.join(out_dir, "best_model.pdparams"))
    weights = os.path.join(out_dir, "best_model" if has_best else "latest")
    result = (f"best validation top-1 {best['top1']:.2f}% at epoch {best['epoch']}" if best["top1"] is not None
              else "no evaluation was run")
    if best["top1"] is not None and not has_best:  # a resumed run that never beat the best of the run it continues
        result += (f" (its weights are best_model.pdparams of the run resumed from; this folder has the last "
                   f"epoch's)")
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
        model = build_from_arch(cfg["Arch"], for_inference=True)
        if g["pretrained_model"]:
            load_weights(model, g["pretrained_model"])
        else:
            load_checkpoint(g["checkpoints"], model, arch=arch, weights_only=True)
        loader = build_dataloader(cfg["DataLoader"]["Eval"], False, num_classes, run.world, run.rank)
        start = time.perf_counter()
        result = evaluate(model, loader, build_loss(cfg["Loss"].get("Eval") or cfg["Loss"]["Train"]),
                          _topk(cfg, "Eval"))
    result.update({"arch": arch, "weights": weights, "seconds": time.perf_counter() - start})
    return result
