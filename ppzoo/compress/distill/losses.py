"""Distillation losses by PaddleClas's names and parameters.

Every loss compares the outputs of named models (``model_name_pairs``) or one model with the
labels (``model_names``), takes ``weight`` (PaddleClas makes it mandatory; here it defaults
to 1.0 like ``CELoss``) and returns its weighted terms as ``{term name: scalar}`` so that the
training log shows each one. ``outputs`` is ``{model name: {"logits": [N, C], "features":
[N, C', H, W] (when a loss asked for them)}}``; ``key`` picks the entry (PaddleClas's
``key`` for models with several outputs), ``logits`` by default.

The closed forms (``kd_kl``, ``soft_ce``, ``dml_kl``, ``dkd``) are plain functions of two
logit tensors, tested on small tensors in ``tests/test_distill.py``:

* ``kd_kl``: Hinton et al., "Distilling the Knowledge in a Neural Network", arXiv
  1503.02531, Sec. 2: KL(softmax(t/T) || softmax(s/T)) summed over classes, averaged over the
  batch, times T^2 (so the soft term's gradients keep their size as T changes).
* ``dml_kl``: Zhang et al., "Deep Mutual Learning", arXiv 1706.00384, Eq. 2-5: each of two
  students learns from the other's softmax; we take the symmetric KL (both directions,
  halved) and let both students receive its gradient, as PaddleClas's ``DMLLoss`` does.
* ``dkd``: Zhao et al., "Decoupled Knowledge Distillation", arXiv 2203.08679, Eq. 7: KD split
  into a target-class term (TCKD: binary KL of [p_target, 1 - p_target]) and a non-target
  term (NCKD: KL among the non-target classes, renormalised), ``alpha * TCKD + beta * NCKD``,
  each times T^2.
"""
from typing import Dict, List, Optional, Sequence

import paddle
import paddle.nn.functional as F

__all__ = ["kd_kl", "soft_ce", "dml_kl", "dkd", "hard_labels", "DistillationGTCELoss", "DistillationCELoss",
           "DistillationKLDivLoss", "DistillationDMLLoss", "DistillationDKDLoss", "DistillationFeatureLoss",
           "DISTILLATION_LOSSES", "feature_mse"]


# ---------------------------------------------------------------------------- closed forms

def kd_kl(student: paddle.Tensor, teacher: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2, summed over classes, mean over the batch."""
    log_p_s = F.log_softmax(student / temperature, axis=-1)
    p_t = F.softmax(teacher / temperature, axis=-1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * temperature ** 2 / student.shape[0]


def soft_ce(student: paddle.Tensor, teacher: paddle.Tensor, temperature: float = 1.0) -> paddle.Tensor:
    """Cross-entropy of the student's softmax(s/T) against the teacher's softmax(t/T), times T^2
    (PaddleClas's DistillationCELoss is the T = 1 case)."""
    p_t = F.softmax(teacher / temperature, axis=-1)
    return -(p_t * F.log_softmax(student / temperature, axis=-1)).sum(axis=-1).mean() * temperature ** 2


def dml_kl(a: paddle.Tensor, b: paddle.Tensor) -> paddle.Tensor:
    """(KL(p_a || p_b) + KL(p_b || p_a)) / 2 of the softmaxes, summed over classes, mean over the batch."""
    log_a, log_b = F.log_softmax(a, axis=-1), F.log_softmax(b, axis=-1)
    p_a, p_b = paddle.exp(log_a), paddle.exp(log_b)
    kl_ab = (p_a * (log_a - log_b)).sum(axis=-1)
    kl_ba = (p_b * (log_b - log_a)).sum(axis=-1)
    return ((kl_ab + kl_ba) / 2).mean()


def _binary_kl(log_p: paddle.Tensor, q: paddle.Tensor) -> paddle.Tensor:
    """sum q * (log q - log_p) over the last axis, with 0 * log 0 = 0."""
    return (q * (paddle.log(paddle.clip(q, min=1e-12)) - log_p)).sum(axis=-1)


def dkd(student: paddle.Tensor, teacher: paddle.Tensor, labels: paddle.Tensor, temperature: float, alpha: float,
        beta: float) -> Dict[str, paddle.Tensor]:
    """Decoupled KD (arXiv 2203.08679, Eq. 7): ``{"tckd": T^2 * KL(b_t || b_s), "nckd": T^2 *
    KL(p~_t || p~_s)}`` (batch means, unweighted) and ``"loss" = alpha * tckd + beta * nckd``.
    ``b`` = [p_target, 1 - p_target] at temperature T; ``p~`` = softmax over the non-target
    classes only."""
    num_classes = student.shape[-1]
    gt = F.one_hot(labels.reshape([-1]).astype("int64"), num_classes).astype(student.dtype)
    s, t = student / temperature, teacher / temperature
    p_s, p_t = F.softmax(s, axis=-1), F.softmax(t, axis=-1)
    b_s = paddle.stack([(p_s * gt).sum(-1), (p_s * (1 - gt)).sum(-1)], axis=-1)
    b_t = paddle.stack([(p_t * gt).sum(-1), (p_t * (1 - gt)).sum(-1)], axis=-1)
    tckd = _binary_kl(paddle.log(paddle.clip(b_s, min=1e-12)), b_t).mean() * temperature ** 2
    # the target logit pushed to -inf (a large negative shift) leaves the softmax over the others
    log_q_s = F.log_softmax(s - 1000.0 * gt, axis=-1)
    q_t = F.softmax(t - 1000.0 * gt, axis=-1)
    nckd = _binary_kl(log_q_s, q_t).mean() * temperature ** 2
    return {"tckd": tckd, "nckd": nckd, "loss": alpha * tckd + beta * nckd}


def hard_labels(targets: paddle.Tensor) -> paddle.Tensor:
    """[N] class indices from hard labels [N] / [N, 1] or soft targets [N, C] (mixup: argmax)."""
    if targets.ndim == 2 and targets.shape[-1] > 1:
        return paddle.argmax(targets, axis=-1)
    return targets.reshape([-1]).astype("int64")


# ---------------------------------------------------------------------------- config-facing losses

def _check_weight(weight) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ValueError(f"weight must be a number >= 0, got {weight!r}")
    return float(weight)


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(f"temperature must be > 0 (it divides the logits), got {temperature!r}")
    return float(temperature)


def _check_pairs(pairs) -> List[List[str]]:
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise ValueError(f"model_name_pairs must be a non-empty list of [student, teacher] name pairs, got {pairs!r}")
    out = []
    for pair in pairs:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(n, str) for n in pair)):
            raise ValueError(f"each entry of model_name_pairs must be two model names, e.g. [Student, Teacher]; "
                             f"got {pair!r}")
        if pair[0] == pair[1]:
            raise ValueError(f"model_name_pairs pairs '{pair[0]}' with itself")
        out.append(list(pair))
    return out


class _PairLoss:
    """Base of the losses that compare two models' outputs."""

    default_key = "logits"
    default_name = "loss"
    needs_labels = False

    def __init__(self, weight: float, model_name_pairs, key: Optional[str], name: Optional[str]):
        self.weight = _check_weight(weight)
        self.model_name_pairs = _check_pairs(model_name_pairs)
        if key not in (None, "logits", "features"):
            raise ValueError(f"key must be logits or features (the outputs a model gives here), got {key!r}")
        self.key = key or self.default_key
        self.name = name or self.default_name

    @property
    def models(self) -> List[str]:
        return [n for pair in self.model_name_pairs for n in pair]

    @property
    def feature_models(self) -> List[str]:
        return self.models if self.key == "features" else []

    def term(self, a: paddle.Tensor, b: paddle.Tensor, labels: paddle.Tensor, pair) -> paddle.Tensor:
        raise NotImplementedError

    def __call__(self, outputs: Dict[str, Dict[str, paddle.Tensor]], targets: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        labels = hard_labels(targets) if self.needs_labels else targets
        return {f"{self.name}_{a}_{b}": self.weight * self.term(outputs[a][self.key], outputs[b][self.key], labels,
                                                                (a, b))
                for a, b in self.model_name_pairs}


class DistillationGTCELoss:
    """Cross-entropy of each model in ``model_names`` against the labels (hard or mixup's
    soft targets), with optional label smoothing ``epsilon``.

    Args:
        weight (float): factor of the term. Default 1.0.
        model_names (list of str): the models trained on the labels.
        epsilon (float, optional): label smoothing in [0, 1). Default None.
        key (str, optional): ``logits`` (default).
        name (str): prefix of the logged term. Default ``loss_gt_ce``.
    """

    feature_models: List[str] = []

    def __init__(self, weight: float = 1.0, model_names: Sequence[str] = ("Student",), epsilon: Optional[float] = None,
                 key: Optional[str] = None, name: str = "loss_gt_ce"):
        self.weight = _check_weight(weight)
        if (not isinstance(model_names, (list, tuple)) or not model_names
                or not all(isinstance(n, str) for n in model_names)):
            raise ValueError(f"model_names must be a non-empty list of model names, got {model_names!r}")
        if epsilon is not None and not 0.0 <= epsilon < 1.0:
            raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
        if key not in (None, "logits"):
            raise ValueError(f"key must be logits, got {key!r}")
        self.model_names, self.epsilon, self.name = list(model_names), epsilon, name

    @property
    def models(self) -> List[str]:
        return list(self.model_names)

    def _ce(self, logits, targets):
        num_classes = logits.shape[-1]
        soft = targets.ndim == 2 and targets.shape[-1] == num_classes and num_classes > 1
        if not soft and not self.epsilon:
            return F.cross_entropy(logits, targets.reshape([-1]).astype("int64"))
        target = targets.astype(logits.dtype) if soft else F.one_hot(targets.reshape([-1]).astype("int64"),
                                                                      num_classes).astype(logits.dtype)
        if self.epsilon:
            target = target * (1.0 - self.epsilon) + self.epsilon / num_classes
        return F.cross_entropy(logits, target, soft_label=True)

    def __call__(self, outputs, targets) -> Dict[str, paddle.Tensor]:
        return {f"{self.name}_{m}": self.weight * self._ce(outputs[m]["logits"], targets) for m in self.model_names}


class DistillationCELoss(_PairLoss):
    """Soft-target cross-entropy: the first model of each pair learns the second's softmax
    (``soft_ce``). PaddleClas's loss has no temperature (T = 1, the default); with
    ``temperature`` the targets are softened and the term scaled by T^2 (Hinton et al., Sec. 2).

    Args:
        weight (float): factor of the term. Default 1.0.
        model_name_pairs (list of [str, str]): [learner, target] pairs, e.g. [[Student, Teacher]].
        temperature (float): T > 0. Default 1.0.
        epsilon: accepted for PaddleClas configs; must be null (no smoothing of soft targets).
        key (str, optional): ``logits`` (default).
        name (str): prefix of the logged terms. Default ``loss_ce``.
    """

    default_name = "loss_ce"

    def __init__(self, weight: float = 1.0, model_name_pairs=(("Student", "Teacher"),), temperature: float = 1.0,
                 epsilon: Optional[float] = None, key: Optional[str] = None, name: str = "loss_ce"):
        super().__init__(weight, model_name_pairs, key, name)
        if epsilon is not None:
            raise ValueError("epsilon (label smoothing) does not apply to a teacher's soft targets; set it to null")
        self.temperature = _check_temperature(temperature)

    def term(self, a, b, labels, pair):
        return soft_ce(a, b.detach(), self.temperature)


class DistillationKLDivLoss(_PairLoss):
    """Hinton et al.'s KD term (``kd_kl``): KL at temperature T, times T^2.

    Args:
        weight (float): factor of the term. Default 1.0.
        model_name_pairs (list of [str, str]): [student, teacher] pairs.
        temperature (float): T > 0. Default 4 (PaddleClas's default).
        key (str, optional): ``logits`` (default).
        name (str): prefix of the logged terms. Default ``loss_kl``.
    """

    default_name = "loss_kl"

    def __init__(self, weight: float = 1.0, model_name_pairs=(("Student", "Teacher"),), temperature: float = 4.0,
                 key: Optional[str] = None, name: str = "loss_kl"):
        super().__init__(weight, model_name_pairs, key, name)
        self.temperature = _check_temperature(temperature)

    def term(self, a, b, labels, pair):
        return kd_kl(a, b.detach(), self.temperature)


class DistillationDMLLoss(_PairLoss):
    """Deep mutual learning (``dml_kl``): symmetric KL between two trained models; both
    receive its gradient. Both models of each pair must be trained (not frozen).

    Args:
        weight (float): factor of the term. Default 1.0.
        model_name_pairs (list of [str, str]): pairs of trained models, e.g. [[Student, Student1]].
        act (str): ``softmax`` (the only activation for single-label classification).
        key (str, optional): ``logits`` (default).
        name (str): prefix of the logged terms. Default ``loss_dml``.
    """

    default_name = "loss_dml"
    both_trained = True

    def __init__(self, weight: float = 1.0, model_name_pairs=(("Student", "Student1"),), act: str = "softmax",
                 key: Optional[str] = None, name: str = "loss_dml"):
        super().__init__(weight, model_name_pairs, key, name)
        if act != "softmax":
            raise ValueError(f"act must be softmax (single-label classification), got {act!r}")

    def term(self, a, b, labels, pair):
        return dml_kl(a, b)


class DistillationDKDLoss(_PairLoss):
    """Decoupled KD (``dkd``): ``alpha * TCKD + beta * NCKD`` at temperature T, against the
    labels (or the teacher's argmax with ``use_target_as_gt``).

    Args:
        weight (float): factor of the term. Default 1.0.
        model_name_pairs (list of [str, str]): [student, teacher] pairs.
        temperature (float): T > 0. Default 1.0 (PaddleClas's; the paper uses 4 on CIFAR-100).
        alpha (float): TCKD weight. Default 1.0.
        beta (float): NCKD weight. Default 1.0 (the paper: 8 on CIFAR-100).
        use_target_as_gt (bool): take the teacher's prediction as the target class. Default False.
        warmup_epochs (int): ppzoo's addition (PaddleClas has none): the term is scaled by
            ``min(epoch / warmup_epochs, 1)`` in 1-based epoch ``epoch``, the linear warm-up of
            the paper's code (20 of 240 epochs on CIFAR-100; its Sec. 4 trains with it). 0: none.
            Default 0.
        key (str, optional): ``logits`` (default).
        name (str): prefix of the logged terms. Default ``loss_dkd``.
    """

    default_name = "loss_dkd"
    needs_labels = True

    def __init__(self, weight: float = 1.0, model_name_pairs=(("Student", "Teacher"),), temperature: float = 1.0,
                 alpha: float = 1.0, beta: float = 1.0, use_target_as_gt: bool = False, warmup_epochs: int = 0,
                 key: Optional[str] = None, name: str = "loss_dkd"):
        super().__init__(weight, model_name_pairs, key, name)
        self.temperature = _check_temperature(temperature)
        for label, value in (("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{label} must be a number >= 0, got {value!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an int >= 0 (0: no warm-up), got {warmup_epochs!r}")
        self.alpha, self.beta, self.use_target_as_gt = float(alpha), float(beta), use_target_as_gt
        self.warmup_epochs = warmup_epochs
        self.scale = 1.0  # the warm-up factor of the current epoch (set_epoch)

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (1-based) by the distillation hook: sets the warm-up factor."""
        self.scale = min(epoch / self.warmup_epochs, 1.0) if self.warmup_epochs else 1.0

    def term(self, a, b, labels, pair):
        b = b.detach()
        if self.use_target_as_gt:
            labels = paddle.argmax(b, axis=-1)
        return self.scale * dkd(a, b, labels, self.temperature, self.alpha, self.beta)["loss"]


class DistillationFeatureLoss(_PairLoss):
    """FitNets-style hint loss (Romero et al., arXiv 1412.6550, Sec. 2.2) on the last feature
    maps (``forward_features``): mean squared error between the teacher's map and the
    student's map through a learned 1x1 convolution (the adapter; added when the widths
    differ, trained with the student, saved in the checkpoint, not exported). Maps of
    different spatial sizes are average-pooled to the smaller one. ppzoo's loss (PaddleClas
    spreads feature distillation over several losses with their own connectors).

    Args:
        weight (float): factor of the term. Default 1.0.
        model_name_pairs (list of [str, str]): [student, teacher] pairs.
        key (str): ``features`` (the only choice; listed for PaddleClas-style configs).
        name (str): prefix of the logged terms. Default ``loss_feature``.
    """

    default_key = "features"
    default_name = "loss_feature"

    def __init__(self, weight: float = 1.0, model_name_pairs=(("Student", "Teacher"),), key: Optional[str] = None,
                 name: str = "loss_feature"):
        if key not in (None, "features"):
            raise ValueError(f"key must be features (the loss compares feature maps), got {key!r}")
        super().__init__(weight, model_name_pairs, key, name)

    def __call__(self, outputs, targets) -> Dict[str, paddle.Tensor]:
        # the distillation model puts the student's map through the pair's adapter as "features_to_<teacher>"
        return {f"{self.name}_{a}_{b}": self.weight * feature_mse(outputs[a].get(f"features_to_{b}",
                                                                                 outputs[a]["features"]),
                                                                  outputs[b]["features"].detach())
                for a, b in self.model_name_pairs}


def feature_mse(student: paddle.Tensor, teacher: paddle.Tensor) -> paddle.Tensor:
    """Mean squared error of two [N, C, H, W] maps of equal width; maps of different spatial
    sizes are average-pooled to the smaller size first."""
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(f"feature maps of {student.shape[1]} and {teacher.shape[1]} channels need an adapter")
    if list(student.shape[2:]) != list(teacher.shape[2:]):
        size = [min(student.shape[2], teacher.shape[2]), min(student.shape[3], teacher.shape[3])]
        student = F.adaptive_avg_pool2d(student, size) if list(student.shape[2:]) != size else student
        teacher = F.adaptive_avg_pool2d(teacher, size) if list(teacher.shape[2:]) != size else teacher
    return F.mse_loss(student, teacher)


DISTILLATION_LOSSES = {cls.__name__: cls for cls in (
    DistillationGTCELoss, DistillationCELoss, DistillationKLDivLoss, DistillationDMLLoss, DistillationDKDLoss,
    DistillationFeatureLoss)}
