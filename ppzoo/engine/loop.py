"""One training epoch and one evaluation pass, with every dependency passed in.

The loop knows nothing of losses, distillation, pruning or quantization: ``step_fn``
computes the loss and ``hooks`` act around the optimizer step (``ppzoo.engine.hooks``).
"""
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import paddle
import paddle.distributed as dist

from ..utils.hooks import HookList

__all__ = ["NonFiniteLossError", "AmpSettings", "train_one_epoch", "evaluate", "topk_correct"]


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class AmpSettings:
    """Mixed precision for the forward pass (``paddle.amp.auto_cast``) and the loss scaler."""

    level: str = "O1"
    scaler: Optional[paddle.amp.GradScaler] = None
    use_promote: bool = True

    def autocast(self):
        return paddle.amp.auto_cast(enable=True, level=self.level, use_promote=self.use_promote)


def topk_correct(logits: paddle.Tensor, labels: paddle.Tensor, ks: Sequence[int]) -> paddle.Tensor:
    """Number of samples whose label is among the top k logits, for each k (k > classes
    counts as top-``classes``)."""
    maxk = min(max(ks), logits.shape[-1])
    pred = paddle.topk(logits, maxk, axis=-1)[1]
    hit = (pred == labels.reshape([-1, 1]).astype(pred.dtype)).astype("float32")
    return paddle.stack([hit[:, :min(k, maxk)].sum() for k in ks])


def train_one_epoch(model, loader, step_fn: Callable, optimizer, scheduler, hooks=(), *, topk: Sequence[int] = (1,),
                    progress=None, batch_transform: Optional[Callable] = None, amp: Optional[AmpSettings] = None,
                    first_step: int = 1, on_step: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train ``model`` for one pass over ``loader``.

    Args:
        model: the model (or its ``DataParallel`` wrapper) passed to ``step_fn`` and hooks.
        loader: yields ``(images, labels, skipped_count)``; ``images is None`` when every
            image of the batch was skipped.
        step_fn: ``step_fn(model, images, targets) -> StepOutput``.
        optimizer, scheduler: stepped once per batch.
        hooks: a :class:`HookList` or a sequence of hooks.
        topk: the k of the top-k accuracies reported.
        progress: ``update(step, images, **values)`` and ``close()`` (``Progress``), or None.
        batch_transform: ``(images, labels) -> (images, targets)`` (mixup, cutmix), or None.
        amp: mixed-precision settings, or None for float32.
        first_step: the run-wide number of this epoch's first step (for ``after_step``).
        on_step: ``on_step(run_step, {"loss", "lr"})`` after every step (VisualDL scalars).

    Returns:
        loss, top-k (%), images, skipped images, seconds, images/s, steps, and the epoch
        mean of every ``StepOutput.extras`` entry. Stops with :class:`NonFiniteLossError`
        on a NaN/inf loss.
    """
    hooks = hooks if isinstance(hooks, HookList) else HookList(hooks)
    after_backward, after_step = hooks._each("after_backward"), hooks._each("after_step")
    scaler = amp.scaler if amp else None
    inner = getattr(model, "_layers", model)  # hooks see the model itself, not a DataParallel wrapper
    model.train()
    start = time.perf_counter()
    loss_sum, images, skipped, step = 0.0, 0, 0, 0
    extras_sum = {}
    correct = paddle.zeros([len(topk)])
    for x, y, bad in loader:
        skipped += int(bad)
        if x is None:  # every image of the batch was skipped
            continue
        step += 1
        target = y
        if batch_transform is not None:
            x, target = batch_transform(x, y)
        if amp is not None:
            with amp.autocast():
                out = step_fn(model, x, target)
        else:
            out = step_fn(model, x, target)
        value = float(out.loss)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss became {value} at step {step}; nothing of this epoch was saved")
        if scaler is not None:
            scaler.scale(out.loss).backward()
            for fn in after_backward:
                fn(inner)
            scaler.step(optimizer)
            scaler.update()
        else:
            out.loss.backward()
            for fn in after_backward:
                fn(inner)
            optimizer.step()
        optimizer.clear_grad()
        scheduler.step()
        for fn in after_step:
            fn(inner, first_step + step - 1)
        n = x.shape[0]
        images += n
        loss_sum += value * n
        for key, extra in out.extras.items():
            extras_sum[key] = extras_sum.get(key, 0.0) + float(extra) * n
        correct += topk_correct(out.logits.detach(), y, topk)
        if on_step is not None:
            on_step(first_step + step - 1, {"loss": value, "lr": optimizer.get_lr()})
        if progress is not None:
            progress.update(step, images, loss=loss_sum / images, top1=f"{100.0 * float(correct[0]) / images:.2f}%")
    if progress is not None:
        progress.close()
    seconds = time.perf_counter() - start
    result = {"loss": loss_sum / max(images, 1), "images": images, "skipped": skipped, "seconds": seconds,
              "images_per_s": images / max(seconds, 1e-9), "steps": step}
    for k, c in zip(topk, correct.numpy().tolist()):
        result[f"top{k}"] = 100.0 * c / max(images, 1)
    for key, total in extras_sum.items():
        result[key] = total / max(images, 1)
    return result


@paddle.no_grad()
def evaluate(model, loader, loss_fn: Callable, topk: Sequence[int], amp: Optional[AmpSettings] = None) -> dict:
    """Loss and top-k (%) over ``loader``; in a distributed run the counts of all ranks
    are summed, so every rank returns the figures of the whole set."""
    model.eval()
    totals = paddle.zeros([3 + len(topk)], dtype="float64")  # loss sum, images, skipped, top-k hits
    for x, y, bad in loader:
        if x is not None:
            if amp is not None:
                with amp.autocast():
                    logits = model(x)
            else:
                logits = model(x)
            logits = logits.astype("float32")
            n = x.shape[0]
            hits = topk_correct(logits, y, topk).astype("float64")
            loss = float(loss_fn(logits, y))
            totals += paddle.concat([paddle.to_tensor([loss * n, n, 0.0], dtype="float64"), hits])
        totals[2] += float(bad)
    if dist.get_world_size() > 1:
        dist.all_reduce(totals)
    values = totals.numpy()
    count = max(values[1], 1.0)
    result = {"loss": values[0] / count, "images": int(values[1]), "skipped": int(values[2])}
    for i, k in enumerate(topk):
        result[f"top{k}"] = 100.0 * values[3 + i] / count
    return result
