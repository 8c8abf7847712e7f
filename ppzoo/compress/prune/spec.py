"""``Slim.prune`` and ``Slim.sparsity``: config checks, training methods, the compress stage.

``Slim.prune`` (PaddleClas writes ``{name: fpgm, pruned_ratio: 0.3}``)::

    name: l1_norm | l2_norm | fpgm | bn_scale | taylor
    pruned_ratio: 0.3        # uniform share of every group's channels, in [0, 1)
    # or ratios: {"blocks.1*": 0.5, ...}   per group / layer (fnmatch), others keep all
    # or target_madds: 0.5   share of MAdds kept, with method: sensitivity | uniform
    global: false            # with bn_scale: one threshold on all |gamma| (network slimming)
    fine_tune_epochs: 0      # tools/compress.py: epochs of the ordinary trainer afterwards
    calib_batches: 4         # taylor: batches of training images scored
    sensitivity_ratios: [0.2, 0.4, 0.6, 0.8]
    sensitivity_batches: 4   # batches of training images (eval transforms) per evaluation
    skip: []                 # group names (fnmatch) never pruned

Through ``tools/train.py`` (as PaddleClas does: prune, then train) the training method's
``prepare`` prunes the model after ``Global.pretrained_model`` is loaded and before the
optimizer is built, and writes ``best_model.arch.json`` / ``latest.arch.json`` beside the
weights the trainer saves. A model that already carries a ``prune`` pass (built from an
``.arch.json``) is not pruned again.

``Slim.sparsity``::

    {name: bn_l1, coeff: 1.0e-4}
    {name: gmp, final_sparsity: 0.8, end_step: 2000, initial_sparsity: 0, begin_step: 0,
     frequency: 100, exclude: []}
"""
import json
import os
from typing import Dict, List, Optional

from ...config import ConfigError, check_keys
from ...utils.fileio import atomic_write
from ..base import ARCH_SUFFIX, TrainingParts, arch_record, register_stage, register_training_method
from ...utils.hooks import Hook
from .criteria import CRITERIA
from .sensitivity import DEFAULT_RATIOS
from .sparsity import GMPHook, SlimmingHook

__all__ = ["PRUNE_SPEC", "check_prune", "check_sparsity", "PruneOnPrepare", "run_prune_stage"]

PRUNE_SPEC = {
    "name": (str, None),
    "pruned_ratio": (Optional[float], None),
    "ratios": (Optional[Dict[str, float]], None),
    "target_madds": (Optional[float], None),
    "method": (str, "sensitivity"),
    "global": (bool, False),
    "fine_tune_epochs": (int, 0),
    "calib_batches": (int, 4),
    "sensitivity_ratios": (List[float], list(DEFAULT_RATIOS)),
    "sensitivity_batches": (int, 4),
    "skip": (List[str], []),
}
W = "Slim.prune"


def _ratio_ok(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0


def check_prune(section, resolved: dict) -> dict:
    p = check_keys(section, PRUNE_SPEC, W)
    if p["name"] not in CRITERIA:
        raise ConfigError(f"'{W}.name' must be one of {', '.join(CRITERIA)}, got {p['name']!r}", key=f"{W}.name")
    given = [k for k in ("pruned_ratio", "ratios", "target_madds") if p[k] is not None]
    if len(given) != 1:
        raise ConfigError(f"'{W}' needs exactly one of pruned_ratio, ratios, target_madds (got "
                          f"{', '.join(given) or 'none'})", key=W)
    if p["pruned_ratio"] is not None and not _ratio_ok(p["pruned_ratio"]):
        raise ConfigError(f"'{W}.pruned_ratio' must be in [0, 1), got {p['pruned_ratio']!r}", key=f"{W}.pruned_ratio")
    for pattern, r in (p["ratios"] or {}).items():
        if not _ratio_ok(r):
            raise ConfigError(f"'{W}.ratios.{pattern}' must be in [0, 1), got {r!r}", key=f"{W}.ratios")
    t = p["target_madds"]
    if t is not None and not (isinstance(t, (int, float)) and 0.0 < t <= 1.0):
        raise ConfigError(f"'{W}.target_madds' is the share of MAdds kept, in (0, 1]; got {t!r} (a target above the "
                          "model's own MAdds cannot be met by pruning)", key=f"{W}.target_madds")
    if p["method"] not in ("sensitivity", "uniform"):
        raise ConfigError(f"'{W}.method' must be sensitivity or uniform, got {p['method']!r}", key=f"{W}.method")
    if p["global"] and p["pruned_ratio"] is None:
        raise ConfigError(f"'{W}.global' thresholds all channels at one value and needs pruned_ratio", key=f"{W}.global")
    for key in ("fine_tune_epochs", "calib_batches", "sensitivity_batches"):
        if p[key] < (0 if key == "fine_tune_epochs" else 1):
            raise ConfigError(f"'{W}.{key}' must be >= {0 if key == 'fine_tune_epochs' else 1}, got {p[key]}",
                              key=f"{W}.{key}")
    if any(not 0.0 < r < 1.0 for r in p["sensitivity_ratios"]) or not p["sensitivity_ratios"]:
        raise ConfigError(f"'{W}.sensitivity_ratios' must be ratios in (0, 1), got {p['sensitivity_ratios']}",
                          key=f"{W}.sensitivity_ratios")
    return p


SPARSITY_SPECS = {
    "bn_l1": {"name": (str, None), "coeff": (float, 1e-4)},
    "gmp": {"name": (str, None), "final_sparsity": (float, None), "end_step": (int, None),
            "initial_sparsity": (float, 0.0), "begin_step": (int, 0), "frequency": (int, 100),
            "exclude": (List[str], [])},
}


def check_sparsity(section, resolved: dict) -> dict:
    name = section.get("name") if isinstance(section, dict) else None
    if name not in SPARSITY_SPECS:
        raise ConfigError(f"'Slim.sparsity.name' must be one of {', '.join(SPARSITY_SPECS)}, got {name!r}",
                          key="Slim.sparsity.name")
    s = check_keys(section, SPARSITY_SPECS[name], "Slim.sparsity")
    try:
        _sparsity_hook(s)
    except ValueError as e:
        raise ConfigError(str(e), key="Slim.sparsity") from None
    return s


def _sparsity_hook(s: dict) -> Hook:
    if s["name"] == "bn_l1":
        return SlimmingHook(s["coeff"])
    if s["final_sparsity"] is None or s["end_step"] is None:
        raise ValueError("Slim.sparsity (gmp) needs final_sparsity and end_step")
    return GMPHook(s["final_sparsity"], s["end_step"], s["initial_sparsity"], s["begin_step"], s["frequency"],
                   s["exclude"])


register_stage("sparsity", check_sparsity, order=15, doc="sparsity during training: bn_l1, gmp")


def _calib_batches(cfg: dict, count: int):
    """The first ``count`` batches of training images with the eval transforms."""
    from ...data import build_dataloader

    train, ev = cfg["DataLoader"]["Train"], cfg["DataLoader"].get("Eval", cfg["DataLoader"]["Train"])
    section = json.loads(json.dumps(ev))
    section["dataset"] = {**json.loads(json.dumps(train["dataset"])),
                          "transform_ops": json.loads(json.dumps(ev["dataset"].get("transform_ops", [])))}
    out = []
    for x, y, _bad in build_dataloader(section, False, cfg["Arch"].get("class_num")):
        if x is not None:
            out.append((x, y))
        if len(out) >= count:
            break
    return out


def _top1(model, batches) -> float:
    import paddle

    model.eval()
    right = total = 0
    with paddle.no_grad():
        for x, y in batches:
            right += int((model(x).argmax(1).numpy() == y.numpy().reshape(-1)).sum())
            total += x.shape[0]
    return 100.0 * right / max(total, 1)


def already_pruned(model) -> bool:
    record = getattr(model, "_ppzoo_arch", None) or {}
    return any(p.get("pass") == "prune" for p in record.get("passes", []))


def prune_from_params(model, p: dict, arch: dict, input_size, calib=None, out_dir: Optional[str] = None, log=None):
    """Prune ``model`` as the checked ``Slim.prune`` section ``p`` asks; ``calib``: batches of
    training images (taylor scores, sensitivity evaluations). Returns (model, info)."""
    from .pruner import Pruner
    from .sensitivity import plot_sensitivity, save_sensitivity, sensitivity, sensitivity_plan

    needs_data = p["name"] == "taylor" or (p["target_madds"] is not None and p["method"] == "sensitivity")
    if needs_data and not calib:
        raise ValueError("Slim.prune: taylor and sensitivity need calibration batches of training images")
    pruner = Pruner(model, p["name"], input_size, calib[:p["calib_batches"]] if calib else None, p["skip"])
    info = {"criterion": p["name"]}
    if p["pruned_ratio"] is not None:
        plan = pruner.global_threshold(p["pruned_ratio"]) if p["global"] else pruner.uniform(p["pruned_ratio"])
    elif p["ratios"] is not None:
        plan = pruner.per_layer(p["ratios"])
    elif p["method"] == "uniform":
        plan = pruner.uniform_for_madds(p["target_madds"])
    else:
        batches = calib[:p["sensitivity_batches"]]
        sens = sensitivity(pruner, lambda m: _top1(m, batches), p["sensitivity_ratios"], log=log)
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            info["sensitivity_json"] = save_sensitivity(sens, os.path.join(out_dir, "sensitivity.json"))
            info["sensitivity_plot"] = plot_sensitivity(sens, os.path.join(out_dir, "sensitivity.png"))
        plan = sensitivity_plan(pruner, sens, p["target_madds"])
    pruned = pruner.apply(plan, arch=arch)
    info.update(madds_before=pruner.base_madds, madds_after=pruner.madds(plan),
                ratios={k: round(v, 4) for k, v in plan.achieved.items()})
    return pruned, info


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class PruneOnPrepare(Hook):
    """``tools/train.py`` with ``Slim.prune``: prune the (pretrained) model before the
    optimizer is built, then train it; write the arch file beside the saved weights."""

    name = "prune"

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.info: dict = {}

    def prepare(self, model):
        import logging

        log = logging.getLogger("ppzoo")
        if already_pruned(model):
            log.info("Slim.prune: the model already carries a prune pass (built from its .arch.json); not pruned again")
            return model
        p, g = self.cfg["Slim"]["prune"], self.cfg["Global"]
        needs = p["name"] == "taylor" or (p["target_madds"] is not None and p["method"] == "sensitivity")
        calib = _calib_batches(self.cfg, max(p["calib_batches"], p["sensitivity_batches"])) if needs else None
        out_dir = os.path.join(g["output_dir"], self.cfg["Arch"]["name"])
        model, self.info = prune_from_params(model, p, self.cfg["Arch"], g["image_shape"], calib, out_dir, log.info)
        os.makedirs(out_dir, exist_ok=True)
        text = json.dumps(arch_record(model), indent=2) + "\n"
        for prefix in ("best_model", "latest", "final_model"):  # the trainer writes the weights beside them
            atomic_write(os.path.join(out_dir, prefix + ARCH_SUFFIX), lambda tmp: _write_text(tmp, text))
        log.info(f"Slim.prune: {p['name']} kept {self.info['madds_after'] / self.info['madds_before']:.3f} of the "
                 f"MAdds; evaluate or export with -o Arch.name={os.path.join(out_dir, 'best_model.arch.json')}")
        return model


@register_training_method
def _prune_training_method(cfg: dict, model, loss_fn):
    if "prune" not in (cfg.get("Slim") or {}):
        return None
    return TrainingParts(hooks=[PruneOnPrepare(cfg)])


@register_training_method
def _sparsity_training_method(cfg: dict, model, loss_fn):
    s = (cfg.get("Slim") or {}).get("sparsity")
    return TrainingParts(hooks=[_sparsity_hook(s)]) if s else None


def run_prune_stage(model, ctx):
    """The ``Slim.prune`` stage of ``tools/compress.py``: prune ``model`` as ``ctx.params`` say
    (calibration batches for ``taylor`` and the sensitivity analysis), then fine-tune."""
    from .. import base

    p = ctx.params
    calib = None
    if p["name"] == "taylor" or (p["target_madds"] is not None and p["method"] == "sensitivity"):
        calib = []
        for x, y, *_ in ctx.loader("calib"):
            if x is not None:
                calib.append((x, y))
            if len(calib) >= max(p["calib_batches"], p["sensitivity_batches"]):
                break
    pruned, info = prune_from_params(model, p, ctx.arch, ctx.cfg["Global"]["image_shape"], calib, ctx.out_dir,
                                     ctx.logger.info)
    if p["fine_tune_epochs"]:
        record = pruned._ppzoo_arch
        pruned = ctx.fine_tune(pruned, p["fine_tune_epochs"])
        pruned._ppzoo_arch = record
    return base.StageResult(model=pruned, info=info)


register_stage("prune", check_prune, order=20, run=run_prune_stage, doc="structured pruning (ppzoo.compress.prune)")
