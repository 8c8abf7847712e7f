"""One training epoch and one evaluation pass, with every dependency passed in."""
import math
import time
from typing import Callable, Optional, Sequence

import numpy as np
import paddle
import paddle.distributed as dist

__all__ = ["NonFiniteLossError", "train_one_epoch", "evaluate", "topk_correct"]


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite."""


def topk_correct(logits: paddle.Tensor, labels: paddle.Tensor, ks: Sequence[int]) -> paddle.Tensor:
    """Number of samples whose label is among the top k logits, for each k (k > classes
    counts as top-``classes``)."""
    maxk = min(max(ks), logits.shape[-1])
    pred = paddle.topk(logits, maxk, axis=-1)[1]
    hit = (pred == labels.reshape([-1, 1]).astype(pred.dtype)).astype("float32")
    return paddle.stack([hit[:, :min(k, maxk)].sum() for k in ks])


def train_one_epoch(model, loader, loss_fn: Callable, optimizer, scheduler, *, num_classes: int,
                    topk: Sequence[int], progress, batch_transforms: Sequence = (),
                    rng: Optional[np.random.Generator] = None, ema=None, scaler=None, amp_level: Optional[str] = None,
                    amp_promote: bool = True, on_step: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train ``model`` for one pass over ``loader``; returns loss, top-k (%), images,
    skipped images and seconds. Stops with :class:`NonFiniteLossError` on a NaN/inf loss."""
    model.train()
    start = time.perf_counter()
    loss_sum, images, skipped, step = 0.0, 0, 0, 0
    correct = paddle.zeros([len(topk)])
    for images_np, labels_np, bad in loader:
        skipped += int(bad)
        if images_np is None:  # every image of the batch was skipped
            continue
        step += 1
        x, y = images_np, labels_np
        target = y
        if batch_transforms:
            op = batch_transforms[int(rng.integers(len(batch_transforms)))]
            x, target = op(x, y, num_classes, rng)
        with paddle.amp.auto_cast(enable=amp_level is not None, level=amp_level or "O1", use_promote=amp_promote):
            logits = model(x)
            loss = loss_fn(logits, target)
        value = float(loss)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss became {value} at step {step}; nothing of this epoch was saved")
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.clear_grad()
        scheduler.step()
        if ema is not None:
            ema.update(getattr(model, "_layers", model))
        n = x.shape[0]
        images += n
        loss_sum += value * n
        correct += topk_correct(logits.detach(), y, topk)
        if on_step is not None:
            on_step(step, {"loss": value, "lr": optimizer.get_lr()})
        progress.update(step, images, loss=loss_sum / images, top1=f"{100.0 * float(correct[0]) / images:.2f}%")
    progress.close()
    seconds = time.perf_counter() - start
    result = {"loss": loss_sum / max(images, 1), "images": images, "skipped": skipped, "seconds": seconds,
              "images_per_s": images / max(seconds, 1e-9), "steps": step}
    for k, c in zip(topk, correct.numpy().tolist()):
        result[f"top{k}"] = 100.0 * c / max(images, 1)
    return result


@paddle.no_grad()
def evaluate(model, loader, loss_fn: Callable, topk: Sequence[int], amp_level: Optional[str] = None,
             amp_promote: bool = True) -> dict:
    """Loss and top-k (%) over ``loader``; in a distributed run the counts of all ranks
    are summed, so every rank returns the figures of the whole set."""
    model.eval()
    totals = paddle.zeros([3 + len(topk)], dtype="float64")  # loss sum, images, skipped, top-k hits
    for images_np, labels_np, bad in loader:
        if images_np is not None:
            with paddle.amp.auto_cast(enable=amp_level is not None, level=amp_level or "O1",
                                      use_promote=amp_promote):
                logits = model(images_np)
            logits = logits.astype("float32")
            n = images_np.shape[0]
            hits = topk_correct(logits, labels_np, topk).astype("float64")
            loss = float(loss_fn(logits, labels_np))
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
