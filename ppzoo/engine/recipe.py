"""``tools/compress.py``: run a config's ``Slim`` stages on a trained model, stage by stage.

The baseline is ``Global.pretrained_model`` built from ``Arch``. Each stage (in the order
``ppzoo.compress.stage_names()`` gives) takes the previous stage's model and writes its own
folder ``output_dir/<arch>/compress/<k>_<stage>/``: the model (``model.pdparams`` +
``model.arch.json``), its deployable inference model (``inference/``) and ``stage.json``
with its figures. A folder with ``stage.json`` is done: a rerun after a crash resumes at
the first stage without one.

Every entry of ``report.json`` is measured the same way, from the deployed form: params,
MAdds and MAC (``ppzoo.analysis``) at ``Global.image_shape``, the size of the exported
parameters (or the stage's own compact format), top-1/top-5 of the predictor on
``DataLoader.Eval``, and the predictor's latency at batch 1 and 8. Latencies of all entries
are timed at the end, interleaved in one run (medians), so their ratios are comparable.
"""
import copy
import json
import os
import shutil
from typing import Optional, Sequence

import numpy as np

from ..analysis import profile_model
from ..compress import StageContext, StageResult, load_arch, save_compressed, stage_names, stage_runner
from ..data import build_dataloader
from ..deploy.export import export_model
from ..deploy.predictor import Predictor
from ..registry import build_from_arch
from ..utils.fileio import write_json
from ..utils.timing import time_interleaved
from ..utils.weights import load_weights
from .loop import topk_correct
from .trainer import _session, output_dir_of, train

__all__ = ["compress"]

STAGE_FILE = "stage.json"


def _dir_bytes(folder: str, suffix: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(suffix))


def _loader_factory(cfg: dict, session):
    dl, classes = cfg["DataLoader"], cfg["Arch"]["class_num"]

    def loader(kind: str):
        if kind == "train":
            return build_dataloader(dl["Train"], True, classes, session.world, session.rank)
        if kind == "eval":
            return build_dataloader(dl["Eval"], False, classes, session.world, session.rank)
        if kind == "calib":  # training images, eval transforms, fixed order
            section = copy.deepcopy(dl["Train"])
            section["dataset"]["transform_ops"] = copy.deepcopy(dl["Eval"]["dataset"]["transform_ops"])
            section["dataset"].pop("batch_transform_ops", None)
            section["sampler"].update(shuffle=False, drop_last=False)
            return build_dataloader(section, False, classes, session.world, session.rank)
        raise ValueError(f"loader kind must be train, eval or calib, got {kind!r}")

    return loader


def _fine_tuner(cfg: dict, folder: str, arch: dict, handed_on: dict):
    """``fine_tune(model, epochs, sections=None)``: save the model, train it with the ordinary
    trainer (no Slim methods, the config's data and optimizer, plus the resolved sections
    earlier stages handed on, e.g. a teacher) in ``folder/finetune``, load the best."""

    def fine_tune(model, epochs: int, sections: Optional[dict] = None):
        if epochs < 1:
            return model
        start = os.path.join(folder, "finetune_start")
        arch_path = save_compressed(model, start, arch)
        tuned = copy.deepcopy(cfg)
        tuned.pop("Slim", None)
        tuned.update(copy.deepcopy({**handed_on, **(sections or {})}))
        tuned["Arch"] = {"name": arch_path, "class_num": cfg["Arch"]["class_num"], "infer_add_softmax": False}
        tuned["Global"].update(epochs=epochs, pretrained_model=start + ".pdparams", checkpoints=None,
                               output_dir=os.path.join(folder, "finetune"))
        summary = train(tuned, config_path="(compress fine-tune)")
        best = os.path.join(output_dir_of(tuned), "best_model" if summary["best"]["top1"] is not None else "latest")
        load_weights(model, best + ".pdparams")
        return model

    return fine_tune


def _predictor_accuracy(folder: str, loader, topk=(1, 5), threads: Optional[int] = None) -> dict:
    predictor = Predictor(folder, threads=threads)
    import paddle

    hits, n = np.zeros(len(topk)), 0
    for images, labels, _ in loader:
        if images is None:
            continue
        logits = paddle.to_tensor(predictor.run(images.numpy()))
        hits += topk_correct(logits, labels, topk).numpy()
        n += images.shape[0]
    return {f"top{k}": 100.0 * h / max(n, 1) for k, h in zip(topk, hits)}


def _deploy(result: StageResult, model, folder: str, shape: Sequence[int]) -> str:
    os.makedirs(folder, exist_ok=True)
    if result.export is not None:
        result.export(folder, list(shape))
    else:
        export_model(model, folder, list(shape))
    return folder


def _measure(name: str, model, result: StageResult, folder: str, cfg: dict, loader, latency_shape) -> dict:
    shape = cfg["Global"]["image_shape"]
    stats = profile_model(model, shape)
    deployed = _deploy(result, model, os.path.join(folder, "inference"), shape)
    timed = deployed if list(latency_shape) == list(shape) else _deploy(
        result, model, os.path.join(folder, f"inference_{latency_shape[-1]}"), latency_shape)
    entry = {"stage": name, "precision": result.precision, "params": stats.params, "madds": stats.madds,
             "mac": stats.mac, "file_bytes": int(result.info.get("file_bytes") or _dir_bytes(deployed, ".pdiparams")),
             **_predictor_accuracy(deployed, loader("eval")), "inference_dir": deployed, "latency_dir": timed,
             "info": {k: v for k, v in result.info.items() if k != "file_bytes"}}
    return entry


def _time_all(entries: list, batches: Sequence[int], threads: int, repeat: int) -> None:
    """Latency of every entry's predictor, interleaved in one run, medians (ms)."""
    for batch in batches:
        runs = {}
        for e in entries:
            predictor = Predictor(e["latency_dir"], threads=threads)
            shape = [batch] + [int(v) for v in predictor.input_shape[1:]]
            data = np.random.default_rng(0).standard_normal(shape).astype("float32")
            runs[e["stage"]] = (lambda p, d: (lambda: p.run(d)))(predictor, data)
        timings = time_interleaved(runs, repeat, max(3, repeat // 4))
        for e in entries:
            e.setdefault("latency_ms", {})[f"batch{batch}"] = timings[e["stage"]].median * 1e3


def _plot(report: dict, path: str) -> Optional[str]:
    """Top-1 against batch-1 latency, one point per stage (needs the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = [e["latency_ms"]["batch1"] for e in report["stages"]]
    ys = [e["top1"] for e in report["stages"]]
    ax.plot(xs, ys, "o-")
    for e, x, y in zip(report["stages"], xs, ys):
        ax.annotate(e["stage"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("predictor latency, batch 1 (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(report["arch"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return os.path.basename(path)


def _report_md(report: dict, config_path: str, plot: Optional[str] = None) -> str:
    base = report["stages"][0]
    lines = [f"# Compression report: {report['arch']}", "",
             f"Config `{config_path}`; latency: predictor, {report['threads']} threads, input "
             f"{report['latency_input']}, interleaved medians of {report['repeat']} runs.", "",
             "| stage | precision | params | MAdds (M) | MAC (M) | file (KB) | top-1 % | top-5 % | batch 1 ms | "
             "batch 8 ms | speed-up b1 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["stages"]:
        lat = e["latency_ms"]
        lines.append(f"| {e['stage']} | {e['precision']} | {e['params']:,} | {e['madds'] / 1e6:.1f} | "
                     f"{e['mac'] / 1e6:.2f} | {e['file_bytes'] / 1024:.0f} | {e['top1']:.2f} | {e.get('top5', 0):.2f} | "
                     f"{lat['batch1']:.2f} | {lat['batch8']:.2f} | {base['latency_ms']['batch1'] / lat['batch1']:.2f}x |")
    last = report["stages"][-1]
    if plot:
        lines += ["", f"![top-1 against latency]({plot})"]
    lines += ["", "Deploy the last stage:", "", "```bash",
              f"python tools/infer.py --model-dir {last['inference_dir']} -i IMAGES", "```", ""]
    return "\n".join(lines)


def compress(cfg: dict, config_path: str = "CONFIG", latency_size: Optional[int] = None, threads: int = 2,
             repeat: int = 20, batches: Sequence[int] = (1, 8)) -> dict:
    """Run ``cfg["Slim"]``'s stages on ``Global.pretrained_model``; returns the report
    (also written as ``report.json`` and ``report.md`` in ``output_dir/<arch>/compress``)."""
    g, slim = cfg["Global"], cfg.get("Slim") or {}
    if not slim:
        raise ValueError(f"nothing to compress: the config has no Slim section (stages: {', '.join(stage_names())})")
    if not g["pretrained_model"]:
        raise ValueError("tools/compress.py compresses a trained model: set -o Global.pretrained_model=PATH")
    if "Eval" not in cfg.get("DataLoader", {}):
        raise ValueError("compression measures top-1 on DataLoader.Eval; the config has none")
    for key in slim:
        if stage_runner(key) is None:
            raise ValueError(f"Slim.{key} acts during training only: run it with tools/train.py, or remove it from "
                             "the recipe")
    if repeat < 1 or threads < 1:
        raise ValueError(f"repeat and threads must be >= 1, got repeat={repeat}, threads={threads}")
    shape = g["image_shape"]
    latency_shape = [shape[0], latency_size, latency_size] if latency_size else list(shape)
    with _session(cfg, "compress.log") as session:
        root = os.path.join(session.out_dir, "compress")
        loader = _loader_factory(cfg, session)
        model = build_from_arch(cfg["Arch"], for_inference=True)
        load_weights(model, g["pretrained_model"])
        session.logger.info(f"compressing {g['pretrained_model']} ({cfg['Arch']['name']}): "
                            f"{' -> '.join(slim)}; output {root}")
        entries = [_measure("baseline", model, StageResult(model), os.path.join(root, "0_baseline"), cfg, loader,
                            latency_shape)]
        handed_on = {}  # config sections a stage hands to the later fine-tunes (Slim.distill's teacher)
        for k, key in enumerate(slim, 1):
            folder = os.path.join(root, f"{k}_{key}")
            done = os.path.join(folder, STAGE_FILE)
            if os.path.isfile(done):
                with open(done, encoding="utf-8") as f:
                    entry = json.load(f)
                missing = [p for p in ("model.arch.json", "model.pdparams", entry["latency_dir"], entry["inference_dir"])
                           if not os.path.exists(os.path.join(folder, p))]
                if missing:
                    raise ValueError(f"stage {k} ({key}) is marked done but {os.path.join(folder, missing[0])} is "
                                     f"missing; delete {folder} to run the stage again")
                model = load_arch(os.path.join(folder, "model.arch.json"))
                load_weights(model, os.path.join(folder, "model.pdparams"))
                session.logger.info(f"stage {k} ({key}): done before, taken from {folder}")
            else:
                os.makedirs(folder, exist_ok=True)
                ctx = StageContext(cfg, key, slim[key], cfg["Arch"], folder, session.logger, loader,
                                   _fine_tuner(cfg, folder, cfg["Arch"], handed_on))
                result = stage_runner(key)(model, ctx)
                model = result.model if result.model is not None else model
                save_compressed(model, os.path.join(folder, "model"), cfg["Arch"])
                entry = _measure(key, model, result, folder, cfg, loader, latency_shape)
                entry["fine_tune_sections"] = result.fine_tune_sections
                write_json(done, entry)
                session.logger.info(f"stage {k} ({key}): {entry['params']:,} params, {entry['madds'] / 1e6:.1f} M "
                                    f"MAdds, top-1 {entry['top1']:.2f}%")
            handed_on.update(entry.get("fine_tune_sections") or {})
            entries.append(entry)
        _time_all(entries, batches, threads, repeat)
        if "export" in slim:  # the contract: Slim.export puts the deployable model in Global.save_inference_dir
            target = g["save_inference_dir"]
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(entries[-1]["inference_dir"], target)
            session.logger.info(f"export: the {entries[-1]['precision']} inference model is in {target}")
        report = {"arch": cfg["Arch"]["name"], "threads": threads, "repeat": repeat, "latency_input": latency_shape,
                  "stages": entries}
        write_json(os.path.join(root, "report.json"), report)
        with open(os.path.join(root, "report.md"), "w", encoding="utf-8") as f:
            f.write(_report_md(report, config_path, _plot(report, os.path.join(root, "report.png"))))
        for e in entries:
            session.logger.info(f"{e['stage']:>10}: top-1 {e['top1']:.2f}%  {e['file_bytes'] / 1024:.0f} KB  "
                                f"{e['latency_ms']['batch1']:.2f} ms (b1)  {e['latency_ms']['batch8']:.2f} ms (b8)")
        session.logger.info(f"report: {os.path.join(root, 'report.json')}, {os.path.join(root, 'report.md')}")
    return report
