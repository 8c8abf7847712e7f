"""Dataset and DataLoader construction from a ``DataLoader.Train`` / ``DataLoader.Eval`` section."""
from typing import Optional

import numpy as np
import paddle

from .datasets import DATASETS, ImageDataset
from .transforms import BATCH_TRANSFORMS

__all__ = ["make_batch_transform", "build_dataset", "build_dataloader", "build_batch_transforms", "collate", "ImageLoader"]


def build_dataset(cfg: dict, num_classes: Optional[int] = None) -> ImageDataset:
    """Instantiate ``cfg = {"name": ..., params}`` and check its labels against ``num_classes``."""
    params = {k: v for k, v in cfg.items() if k not in ("name", "batch_transform_ops")}
    dataset = DATASETS[cfg["name"]](**params)
    if len(dataset) == 0:
        raise ValueError(f"{cfg['name']} is empty")
    if num_classes is not None:
        labels = np.asarray(dataset.labels)
        bad = np.nonzero((labels < 0) | (labels >= num_classes))[0]
        if len(bad):
            raise ValueError(f"label {labels[bad[0]]} of {dataset.describe(int(bad[0]))} is outside [0, {num_classes}) "
                             f"({len(bad)} such samples); set Arch.class_num to the number of classes")
    return dataset


_UNSTACKABLE = -2  # ``bad`` of a batch whose images differ in shape


def collate(batch):
    """Stack the samples; undecodable ones arrive as ``(None, index)``. Returns (images,
    labels, bad), where ``bad`` holds the indices of undecodable samples padded with -1 to
    the batch length (Paddle's shared-memory loader cannot pass empty arrays), and a batch
    with no good image gets a 2-D placeholder that :class:`ImageLoader` drops.

    Never raises (an exception here would hang or kill the loader, see
    ``ImageDataset.__getitem__``): images of different shapes give the placeholder and
    ``bad = -2`` for every sample, which :class:`ImageLoader` reports."""
    good = [s for s in batch if s[0] is not None]
    bad = np.full(len(batch), -1, dtype="int64")
    bad[:len(batch) - len(good)] = [int(s[1]) for s in batch if s[0] is None]
    placeholder = np.zeros([1, 1], dtype="float32"), np.zeros([1], dtype="int64")
    if not good:
        return (*placeholder, bad)
    if len({s[0].shape for s in good}) > 1:
        return (*placeholder, np.full(len(batch), _UNSTACKABLE, dtype="int64"))
    return np.stack([s[0] for s in good]), np.stack([s[1] for s in good]), bad


class ImageLoader:
    """A ``paddle.io.DataLoader`` yielding ``(images, labels, skipped)``. Undecodable images
    (or images a transform fails on) stop the run with the file's name and the transform,
    raised here in the main process, or are skipped and counted when the dataset has
    ``skip_bad_images: true``. A pass in which every image was skipped is an error: there
    is nothing to train or evaluate on."""

    def __init__(self, loader: paddle.io.DataLoader, dataset: ImageDataset):
        self.loader, self.dataset = loader, dataset
        self.batch_sampler = loader.batch_sampler

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        good = skipped = 0
        first_bad = None
        for images, labels, bad in self.loader:
            bad = np.asarray(bad).reshape(-1)
            if len(bad) and bad.min() == _UNSTACKABLE:
                self._unstackable()
            bad = bad[bad >= 0]
            if len(bad) and not self.dataset.skip_bad_images:
                self.dataset.check_image(int(bad[0]))
            images = images if images.ndim == 4 else None
            good += 0 if images is None else images.shape[0]
            skipped += len(bad)
            if first_bad is None and len(bad):
                first_bad = int(bad[0])
            yield images, labels, len(bad)
        if skipped and not good:
            raise ValueError(f"all {skipped} images of this pass over {type(self.dataset).__name__} were unreadable "
                             f"and skipped (first: {self.dataset.describe(first_bad)}: "
                             f"{self.dataset.error_of(first_bad)}); nothing to train or evaluate on: check the data "
                             "paths and transform_ops")

    def _unstackable(self) -> None:
        """Name two samples of different shapes (the first found, in index order)."""
        shapes = {}
        for idx in range(len(self.dataset)):
            image = self.dataset[idx][0]
            if image is not None:
                shapes.setdefault(tuple(image.shape), idx)
            if len(shapes) == 2:
                break
        if len(shapes) < 2:  # random crops of several sizes: found only in the batch itself
            raise ValueError(f"images of one batch of {type(self.dataset).__name__} differ in shape; give "
                             "transform_ops a ResizeImage/RandCropImage/CropImage to one size")
        (shape_a, a), (shape_b, b) = list(shapes.items())[:2]
        raise ValueError(f"images of one batch differ in shape: {self.dataset.describe(a)} is "
                         f"{'x'.join(map(str, shape_a))} but {self.dataset.describe(b)} is {'x'.join(map(str, shape_b))}"
                         "; give transform_ops a ResizeImage/RandCropImage/CropImage to one size")


def build_dataloader(cfg: dict, train: bool, num_classes: Optional[int], world_size: int = 1, rank: int = 0):
    """:class:`ImageLoader` for one section. Training shards and shuffles with
    ``DistributedBatchSampler`` (call ``loader.batch_sampler.set_epoch``); evaluation gives
    rank r the samples r, r + world, ... without padding, so summed counts are exact."""
    dataset = build_dataset(cfg["dataset"], num_classes)
    sampler_cfg, loader_cfg = cfg["sampler"], cfg["loader"]
    if train:
        source = dataset
        batch_sampler = paddle.io.DistributedBatchSampler(
            dataset, batch_size=sampler_cfg["batch_size"], num_replicas=world_size, rank=rank,
            shuffle=sampler_cfg["shuffle"], drop_last=sampler_cfg["drop_last"])
    else:
        source = paddle.io.Subset(dataset, list(range(rank, len(dataset), world_size)))
        batch_sampler = paddle.io.BatchSampler(source, batch_size=sampler_cfg["batch_size"], shuffle=False,
                                               drop_last=False)
    loader = paddle.io.DataLoader(source, batch_sampler=batch_sampler, collate_fn=collate,
                                  num_workers=loader_cfg["num_workers"],
                                  use_shared_memory=loader_cfg["use_shared_memory"], return_list=True)
    return ImageLoader(loader, dataset)


def build_batch_transforms(cfg: dict) -> list:
    """The ``batch_transform_ops`` of a dataset section (mixup / cutmix)."""
    ops = []
    for entry in cfg["dataset"].get("batch_transform_ops") or []:
        name, params = next(iter(entry.items()))
        ops.append(BATCH_TRANSFORMS[name](**(params or {})))
    return ops


def make_batch_transform(ops: list, num_classes: int, rng: np.random.Generator):
    """``(images, labels) -> (images, targets)`` applying one of ``ops`` (mixup, cutmix),
    picked at random per batch, or ``None`` when there are none."""
    if not ops:
        return None

    def apply(images, labels):
        op = ops[int(rng.integers(len(ops)))]
        return op(images, labels, num_classes, rng)

    return apply
