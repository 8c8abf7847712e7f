"""Model, loss, optimizer, LR schedule and metric construction from config sections.

Each registry maps a config name to a factory whose signature lists the config
parameters (``ppzoo.config`` checks them against it before anything runs).
"""
import math
from functools import partial
from typing import Callable, Dict, List, Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.optimizer import lr as lr_sched

from ..compress import registered_losses  # training methods' own losses (their step functions call them)
from ..registry import build_from_arch

__all__ = ["OPTIMIZERS", "LR_SCHEDULES", "LOSSES", "METRICS", "build_model", "build_loss", "build_optimizer",
           "build_lr_scheduler", "TopkAcc", "OPTIMIZER_EXTRA", "ADAMW_EXTRA", "REGULARIZER", "NO_WEIGHT_DECAY",
           "optimizer_conflict"]


# ---------------------------------------------------------------------------- model

def build_model(arch: dict) -> nn.Layer:
    """``Arch`` section -> the model to train (``ppzoo.registry.build_from_arch``)."""
    return build_from_arch(arch)


# ---------------------------------------------------------------------------- loss

class CELoss:
    """Cross-entropy with optional label smoothing ``epsilon`` (Szegedy et al., arXiv
    1512.00567, Sec. 7); accepts hard labels [N] or soft targets [N, C] (mixup, cutmix)."""

    def __init__(self, weight: float = 1.0, epsilon: Optional[float] = None):
        if epsilon is not None and not 0.0 <= epsilon < 1.0:
            raise ValueError(f"CELoss.epsilon must be in [0, 1), got {epsilon}")
        self.weight, self.epsilon = weight, epsilon

    def __call__(self, logits, target):
        num_classes = logits.shape[-1]
        if target.ndim == 1 or target.shape[-1] != num_classes:
            if not self.epsilon:
                return self.weight * F.cross_entropy(logits, target.reshape([-1]).astype("int64"))
            target = F.one_hot(target.reshape([-1]).astype("int64"), num_classes)
        if self.epsilon:
            target = target * (1.0 - self.epsilon) + self.epsilon / num_classes
        return self.weight * F.cross_entropy(logits, target.astype(logits.dtype), soft_label=True)


LOSSES = {"CELoss": CELoss}


def build_loss(entries: List[dict]) -> Callable:
    """A list of ``{Name: params}`` -> one callable summing the weighted losses."""
    factories = {**LOSSES, **registered_losses()}
    losses = [factories[name](**(params or {})) for entry in entries for name, params in entry.items()]

    def total(logits, target):
        return sum(loss(logits, target) for loss in losses)

    return total


# ---------------------------------------------------------------------------- metric

class TopkAcc:
    """Top-k accuracy for every k in ``topk``."""

    def __init__(self, topk: List[int] = (1, 5)):
        if not topk or any(not isinstance(k, int) or k < 1 for k in topk):
            raise ValueError(f"topk must be a list of positive ints, got {topk!r}")
        if 1 not in topk:
            raise ValueError(f"topk must include 1 (top-1 picks best_model and fills the logs), got {list(topk)}")
        self.topk = sorted(set(topk))


METRICS = {"TopkAcc": TopkAcc}


# ---------------------------------------------------------------------------- optimizers

def _momentum(momentum: float = 0.9, use_nesterov: bool = False):
    return partial(paddle.optimizer.Momentum, momentum=momentum, use_nesterov=use_nesterov)


def _sgd():
    return paddle.optimizer.SGD


def _rmsprop(rho: float = 0.95, epsilon: float = 1e-6, momentum: float = 0.0, centered: bool = False):
    return partial(paddle.optimizer.RMSProp, rho=rho, epsilon=epsilon, momentum=momentum, centered=centered)


def _adam(beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8):
    return partial(paddle.optimizer.Adam, beta1=beta1, beta2=beta2, epsilon=epsilon)


def _adamw(beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8, weight_decay: float = 0.01):
    """Decoupled weight decay (Loshchilov & Hutter, arXiv 1711.05101); PaddleClas's two
    exclusion options are ``ADAMW_EXTRA``."""
    return partial(paddle.optimizer.AdamW, beta1=beta1, beta2=beta2, epsilon=epsilon, weight_decay=weight_decay)


OPTIMIZERS = {"Momentum": _momentum, "SGD": _sgd, "RMSProp": _rmsprop, "Adam": _adam, "AdamW": _adamw}

# keys of the Optimizer section besides the optimizer's own parameters: {key: (type, default)}
OPTIMIZER_EXTRA = {
    "clip_norm": (Optional[float], None),  # global gradient-norm clipping
    "no_weight_decay": (List[str], []),  # any of NO_WEIGHT_DECAY
    "base_batch_size": (Optional[int], None),  # scale every LR by global_batch / base_batch_size
}
# PaddleClas's AdamW options: substrings of parameter names, and all 1-D parameters, kept undecayed
ADAMW_EXTRA = {"no_weight_decay_name": (Optional[str], None), "one_dim_param_no_weight_decay": (bool, False)}
REGULARIZER = {"name": (str, "L2"), "coeff": (float, 0.0)}
NO_WEIGHT_DECAY = ("norm", "depthwise", "bias")


def optimizer_conflict(cfg: dict) -> Optional[str]:
    """Why the ``Optimizer`` section's options cannot go together, or ``None``."""
    if cfg.get("name") == "AdamW" and cfg.get("regularizer") is not None:
        return ("cannot be used with AdamW, which decays weights itself (Optimizer.weight_decay); set it "
                "to null")
    return None


def _no_decay_names(model: nn.Layer, categories, substrings=(), one_dim=False) -> set:
    """Structured names of parameters kept free of weight decay (MobileNetV1, Sec. 3.3:
    little or no decay on depthwise filters; BN scale/shift; biases)."""
    names = set()
    for layer_name, layer in model.named_sublayers(include_self=True):
        prefix = f"{layer_name}." if layer_name else ""
        for pname, p in layer.named_parameters(include_sublayers=False):
            full = prefix + pname
            is_norm = isinstance(layer, (nn.BatchNorm2D, nn.BatchNorm, nn.LayerNorm, nn.GroupNorm))
            is_dw = (isinstance(layer, nn.Conv2D) and pname == "weight" and layer._groups > 1
                     and layer._groups == layer._in_channels)
            if (("norm" in categories and is_norm) or ("depthwise" in categories and is_dw)
                    or ("bias" in categories and pname == "bias") or any(s in full for s in substrings)
                    or (one_dim and len(p.shape) == 1)):
                names.add(full)
    return names


def build_optimizer(cfg: dict, model: nn.Layer, scheduler) -> paddle.optimizer.Optimizer:
    """``Optimizer`` section -> optimizer over ``model``'s trainable parameters."""
    name = cfg["name"]
    conflict = optimizer_conflict(cfg)
    if conflict:
        raise ValueError(f"Optimizer.regularizer {conflict}")
    outside = ("name", "lr", "regularizer", *OPTIMIZER_EXTRA, *ADAMW_EXTRA)
    adamw_extra = {k: cfg[k] for k in ADAMW_EXTRA if k in cfg}
    factory = OPTIMIZERS[name](**{k: v for k, v in cfg.items() if k not in outside})
    grad_clip = nn.ClipGradByGlobalNorm(cfg["clip_norm"]) if cfg.get("clip_norm") else None
    named = [(n, p) for n, p in model.named_parameters() if p.trainable]
    no_decay = _no_decay_names(model, cfg.get("no_weight_decay") or [],
                               (adamw_extra.get("no_weight_decay_name") or "").split(),
                               adamw_extra.get("one_dim_param_no_weight_decay", False))
    if name == "AdamW":
        structured = {p.name: n for n, p in named}  # AdamW asks by Paddle's internal parameter name
        return factory(learning_rate=scheduler, parameters=[p for _, p in named], grad_clip=grad_clip,
                       apply_decay_param_fun=lambda pname: structured.get(pname) not in no_decay)
    reg = cfg.get("regularizer")
    decay = None
    if reg and reg["coeff"] > 0:
        decay = (paddle.regularizer.L2Decay if reg["name"] == "L2" else paddle.regularizer.L1Decay)(reg["coeff"])
    groups = [{"params": [p for n, p in named if n not in no_decay]}]
    if no_decay:
        groups.append({"params": [p for n, p in named if n in no_decay], "weight_decay": 0.0})
    return factory(learning_rate=scheduler, parameters=groups, weight_decay=decay, grad_clip=grad_clip)


# ---------------------------------------------------------------------------- LR schedules

def _with_warmup(make, learning_rate: float, warmup_epoch: float, warmup_start_lr: float):
    """Wrap ``make(steps_after_warmup, steps_per_epoch, scale)`` with a linear warm-up."""
    if learning_rate < 0:
        raise ValueError(f"learning_rate must be >= 0, got {learning_rate}")
    if warmup_epoch < 0:
        raise ValueError(f"warmup_epoch must be >= 0, got {warmup_epoch}")
    if warmup_epoch > 0 and not 0 <= warmup_start_lr <= learning_rate:
        raise ValueError(f"warmup_start_lr must be in [0, learning_rate={learning_rate}] (the warm-up climbs to the "
                         f"learning rate), got {warmup_start_lr}")

    def build(epochs: int, steps_per_epoch: int, scale: float = 1.0):
        warmup = int(round(warmup_epoch * steps_per_epoch))
        total = max(1, epochs * steps_per_epoch - warmup)
        inner = make(total, steps_per_epoch, scale)
        if warmup <= 0:
            return inner
        return lr_sched.LinearWarmup(inner, warmup, warmup_start_lr * scale, learning_rate * scale)

    return build


def Constant(learning_rate: float, warmup_epoch: float = 0, warmup_start_lr: float = 0.0):
    """A fixed learning rate."""
    return _with_warmup(lambda total, spe, s: lr_sched.LambdaDecay(learning_rate * s, lambda step: 1.0),
                        learning_rate, warmup_epoch, warmup_start_lr)


def Piecewise(decay_epochs: List[float], values: List[float], learning_rate: Optional[float] = None,
              warmup_epoch: float = 0, warmup_start_lr: float = 0.0):
    """``values[i]`` until ``decay_epochs[i]`` (PaddleClas's Piecewise; ``learning_rate`` is ignored)."""
    if len(values) != len(decay_epochs) + 1:
        raise ValueError(f"Piecewise needs len(values) == len(decay_epochs) + 1, got {len(values)} values and "
                         f"{len(decay_epochs)} decay_epochs")

    def make(total, spe, s):
        warm = int(round(warmup_epoch * spe))
        return lr_sched.PiecewiseDecay([max(1, int(e * spe) - warm) for e in decay_epochs], [v * s for v in values])

    return _with_warmup(make, values[0], warmup_epoch, warmup_start_lr)


def Cosine(learning_rate: float, eta_min: float = 0.0, warmup_epoch: float = 0, warmup_start_lr: float = 0.0):
    """Cosine annealing to ``eta_min`` over the run, per step (Loshchilov & Hutter, arXiv 1608.03983)."""
    return _with_warmup(lambda total, spe, s: lr_sched.CosineAnnealingDecay(learning_rate * s, total, eta_min * s),
                        learning_rate, warmup_epoch, warmup_start_lr)


def Linear(learning_rate: float, end_lr: float = 0.0, warmup_epoch: float = 0, warmup_start_lr: float = 0.0):
    """Linear decay to ``end_lr`` over the run, per step (ShuffleNetV1, Sec. 4: 0.5 -> 0)."""
    return _with_warmup(lambda total, spe, s: lr_sched.PolynomialDecay(learning_rate * s, total, end_lr * s, 1.0),
                        learning_rate, warmup_epoch, warmup_start_lr)


def Exponential(learning_rate: float, gamma: float, warmup_epoch: float = 0, warmup_start_lr: float = 0.0):
    """Multiply by ``gamma`` every epoch (MobileNetV2, Sec. 6.1: 0.98)."""
    return _with_warmup(lambda total, spe, s: lr_sched.LambdaDecay(learning_rate * s, lambda step: gamma ** (step // spe)),
                        learning_rate, warmup_epoch, warmup_start_lr)


def Step(learning_rate: float, step_size: int, gamma: float = 0.1, warmup_epoch: float = 0,
         warmup_start_lr: float = 0.0):
    """Multiply by ``gamma`` every ``step_size`` epochs (AlexNet, Sec. 5: divide by 10)."""
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1 epoch, got {step_size}")
    return _with_warmup(
        lambda total, spe, s: lr_sched.LambdaDecay(learning_rate * s, lambda step: gamma ** (step // (step_size * spe))),
        learning_rate, warmup_epoch, warmup_start_lr)


class _Plateau(lr_sched.LRScheduler):
    """The rate of :func:`ReduceOnPlateau`: unchanged by the per-step ``step()``, multiplied
    by ``factor`` by :meth:`observe` once the monitored value has not improved for
    ``patience`` observations. Its counters are in ``keys``, so they are saved with the
    optimizer's state and an exact resume keeps them."""

    def __init__(self, learning_rate, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr):
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown, self.min_lr = threshold, threshold_mode, cooldown, min_lr
        self.current, self.best, self.num_bad, self.cooldown_counter = learning_rate, None, 0, 0
        super().__init__(learning_rate)

    def state_keys(self):  # Paddle's state_dict/set_state_dict call this for the keys to keep
        self.keys = ["last_epoch", "last_lr", "current", "best", "num_bad", "cooldown_counter"]

    def get_lr(self):
        return self.current

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False  # a nan / inf epoch is a bad epoch, never the best
        if self.best is None:
            return True
        sign = 1.0 if self.mode == "min" else -1.0
        margin = self.threshold * abs(self.best) if self.threshold_mode == "rel" else self.threshold
        return sign * (self.best - value) > margin

    def observe(self, value: float) -> bool:
        """One epoch's monitored value; returns whether the rate was reduced."""
        if self._improves(value):
            self.best, self.num_bad = float(value), 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad <= self.patience:
            return False
        new = max(self.current * self.factor, self.min_lr)
        self.num_bad, self.cooldown_counter = 0, self.cooldown
        if self.current - new <= 1e-12:
            return False
        self.current = self.last_lr = new
        return True


class PlateauHook:
    """Feeds the monitored value of every evaluated epoch to a :class:`_Plateau` rate;
    ``outer`` is the scheduler the optimizer reads (the warm-up wrapper, if any), refreshed
    after a cut so the next step already uses the new rate."""

    name = "ReduceOnPlateau"

    def __init__(self, plateau: _Plateau, monitor: str, outer: lr_sched.LRScheduler):
        self.plateau, self.monitor, self.outer = plateau, monitor, outer
        # the trainer refuses a run that would never evaluate (the rate could never change)
        self.needs_eval = f"Optimizer.lr ReduceOnPlateau monitors '{monitor}'" if monitor.startswith("eval") else None

    def after_epoch(self, model, epoch: int, record: dict) -> None:
        part, key = self.monitor.split("_", 1)
        value = record.get(part, {}).get(key)
        if value is None:  # an epoch without evaluation does not count
            return
        if part == "train" and paddle.distributed.get_world_size() > 1:
            # each rank has its own shard's loss (the eval figures are already global): decide on the mean
            total = paddle.to_tensor([float(value)], dtype="float64")
            paddle.distributed.all_reduce(total)
            value = float(total.numpy()[0]) / paddle.distributed.get_world_size()
        if self.plateau.observe(float(value)) and self.outer is not self.plateau:
            self.outer.last_lr = self.outer.get_lr()  # after the warm-up: the inner rate; during it: unchanged


PLATEAU_MONITORS = {"eval_loss": "min", "eval_top1": "max", "train_loss": "min"}


def ReduceOnPlateau(learning_rate: float, monitor: str = "eval_loss", mode: Optional[str] = None, factor: float = 0.1,
                    patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                    min_lr: float = 0.0, warmup_epoch: float = 0, warmup_start_lr: float = 0.0):
    """Divide the rate by 1/``factor`` when ``monitor`` has not improved for ``patience``
    evaluated epochs (SENet, Sec. 5.1, mobile setting: "reduced by a factor of 10 each time
    the validation loss plateaued"). Paddle's ``ReduceOnPlateau`` parameters; ``monitor`` is
    ``eval_loss``, ``eval_top1`` or ``train_loss`` and sets ``mode``."""
    if monitor not in PLATEAU_MONITORS:
        raise ValueError(f"monitor must be one of {', '.join(PLATEAU_MONITORS)}, got '{monitor}'")
    if mode is not None and mode != PLATEAU_MONITORS[monitor]:
        raise ValueError(f"mode '{mode}' contradicts monitor '{monitor}' (which improves when it goes "
                         f"{'down' if PLATEAU_MONITORS[monitor] == 'min' else 'up'}: mode {PLATEAU_MONITORS[monitor]})")
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor}")
    if patience < 0 or cooldown < 0:
        raise ValueError(f"patience and cooldown must be >= 0, got {patience} and {cooldown}")
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"threshold_mode must be 'rel' or 'abs', got '{threshold_mode}'")
    build = _with_warmup(lambda total, spe, s: _Plateau(learning_rate * s, PLATEAU_MONITORS[monitor], factor, patience,
                                                         threshold, threshold_mode, cooldown, min_lr * s),
                         learning_rate, warmup_epoch, warmup_start_lr)

    def build_with_hook(epochs: int, steps_per_epoch: int, scale: float = 1.0):
        scheduler = build(epochs, steps_per_epoch, scale)
        plateau = scheduler.learning_rate if isinstance(scheduler, lr_sched.LinearWarmup) else scheduler
        scheduler.training_hooks = [PlateauHook(plateau, monitor, scheduler)]  # the trainer adds them
        return scheduler

    return build_with_hook


LR_SCHEDULES = {f.__name__: f for f in (Constant, Piecewise, Cosine, Linear, Exponential, Step, ReduceOnPlateau)}


def build_lr_scheduler(cfg: dict, epochs: int, steps_per_epoch: int, scale: float = 1.0) -> lr_sched.LRScheduler:
    """``Optimizer.lr`` section -> a per-step scheduler; every rate is multiplied by ``scale``."""
    params = {k: v for k, v in cfg.items() if k != "name"}
    return LR_SCHEDULES[cfg["name"]](**params)(epochs, steps_per_epoch, scale)
