"""Datasets by name: built-in digits, PaddleClas label lists, image folders, CIFAR.

Every dataset returns ``(CHW float32 array, int64 label)`` after its ``transform_ops``.
Random augmentations are seeded per (seed, epoch, sample), so a run resumed at an epoch
boundary, or split over workers or processes, sees exactly the same images.
"""
import contextlib
import os
import random
from functools import lru_cache
from typing import List, Optional, Tuple

import numpy as np
import paddle
from PIL import Image

from .transforms import BadImageError, build_transforms

__all__ = ["DATASETS", "ImageDataset", "DigitsDataset", "ImageNetDataset", "ImageFolderDataset", "Cifar10",
           "Cifar100"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


@contextlib.contextmanager
def _seeded(*key: int):
    """Seed Python's and NumPy's global generators (which the transforms draw from) from
    ``key``, and put the caller's state back afterwards."""
    saved = random.getstate(), np.random.get_state()
    state = np.random.SeedSequence(list(key)).generate_state(2)
    random.seed(int(state[0]))
    np.random.seed(int(state[1]))
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])


class ImageDataset(paddle.io.Dataset):
    """Base class: transforms, per-sample seeding, bad-image policy, label bookkeeping.

    Subclasses set ``self.labels`` (one int per sample), optionally ``self.class_names``,
    and implement ``_load(idx) -> (image, label)`` and ``describe(idx)``.
    """

    def __init__(self, transform_ops: Optional[list] = None, skip_bad_images: bool = False):
        self.transform = build_transforms(transform_ops)
        self.skip_bad_images = skip_bad_images
        self.seed, self.epoch = 0, 0
        self.labels: List[int] = []
        self.class_names: Optional[List[str]] = None

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        """Select the augmentation randomness of ``epoch``; call before iterating."""
        self.seed, self.epoch = seed, epoch

    def __len__(self):
        return len(self.labels)

    def describe(self, idx: int) -> str:
        return f"sample {idx}"

    def check_image(self, idx: int) -> None:
        """Raise the :class:`BadImageError` of sample ``idx``, naming its file (and the
        transform that failed). Called in the main process for a sample a loader worker
        reported as bad; the sample's seed is the worker's, so random crops fail again."""
        raise BadImageError(f"{self.describe(idx)}: {self.error_of(idx)} (set skip_bad_images: true in the dataset "
                            "to skip and count such files)")

    def error_of(self, idx: int) -> str:
        """Why sample ``idx`` cannot be loaded and transformed (redone with its seed)."""
        try:
            self._transformed(idx)
        except Exception as e:  # noqa: BLE001 -- __getitem__ turned the same error into (None, idx)
            return str(e) if isinstance(e, BadImageError) else f"cannot load sample: {type(e).__name__}: {e}"
        return ("failed in a data loader worker but not when retried in the main process (a transform that is not "
                "reproducible?); rerun with loader.num_workers: 0")

    def _transformed(self, idx: int):
        with _seeded(self.seed, self.epoch, int(idx)):
            img, label = self._load(idx)
            return self.transform(img), label

    def _load(self, idx: int):
        raise NotImplementedError

    def __getitem__(self, idx):
        """``(image, label)``, or ``(None, idx)`` for an image that cannot be read, decoded
        or transformed. Nothing may raise here: Paddle's loader thread (``num_workers: 0``)
        dies on an exception and leaves the main process waiting forever, and a worker
        process ends the run with a traceback that names no file. So the loader raises the
        error (or counts the skip) in the main process; see :meth:`check_image`."""
        try:
            img, label = self._transformed(idx)
        except Exception:  # noqa: BLE001 -- raising here would hang (num_workers 0) or kill the loader
            return None, np.int64(idx)
        if isinstance(img, paddle.Tensor):
            img = img.numpy()
        img = np.asarray(img, dtype="float32")
        if img.ndim == 2:
            img = img[None]
        elif not self.transform.chw:
            img = img.transpose(2, 0, 1)
        return np.ascontiguousarray(img), np.int64(label)


def text_lines(path: str):
    """``(number, line)`` of a UTF-8 text file (a BOM is allowed); a line that is not
    UTF-8 raises ``ValueError`` naming the file and line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1});"
                                 " save the file as UTF-8") from None


@lru_cache(maxsize=4)
def _digits_images(image_size: int) -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.stack([
        np.asarray(Image.fromarray((im * (255.0 / 16.0)).astype("uint8")).resize((image_size, image_size),
                                                                                  Image.BILINEAR))
        for im in digits.images])
    return images, digits.target.astype("int64")


class DigitsDataset(ImageDataset):
    """The 1,797 8x8 handwritten digits shipped inside scikit-learn (UCI optdigits test
    set), upsampled to ``image_size`` and given 3 identical channels. The split is fixed
    and stratified: ``val_fraction`` of each class (chosen with ``split_seed``) is the
    validation set. Needs no download.

    Args:
        split (str): "train" or "val". Default: "train".
        image_size (int): side after bilinear upsampling. Default: 32.
        val_fraction (float): share of each class held out. Default: 0.2.
        split_seed (int): seed of the split. Default: 0.
        transform_ops (list): transforms applied to the RGB PIL image.
    """

    def __init__(self, split: str = "train", image_size: int = 32, val_fraction: float = 0.2, split_seed: int = 0,
                 transform_ops: Optional[list] = None, skip_bad_images: bool = False):
        super().__init__(transform_ops, skip_bad_images)
        if split not in ("train", "val"):
            raise ValueError(f"DigitsDataset.split must be 'train' or 'val', got {split!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"DigitsDataset.val_fraction must be in (0, 1), got {val_fraction}")
        images, targets = _digits_images(image_size)
        rng = np.random.RandomState(split_seed)
        val = np.zeros(len(targets), dtype=bool)
        for c in range(10):
            idx = rng.permutation(np.nonzero(targets == c)[0])
            val[idx[:int(round(len(idx) * val_fraction))]] = True
        self.indices = np.nonzero(val if split == "val" else ~val)[0]
        self.images = images
        self.labels = targets[self.indices].tolist()
        self.class_names = [str(i) for i in range(10)]

    def describe(self, idx):
        return f"digits sample {self.indices[idx]}"

    def _load(self, idx):
        return Image.fromarray(self.images[self.indices[idx]]).convert("RGB"), self.labels[idx]


class ImageNetDataset(ImageDataset):
    """PaddleClas's label-list dataset: each line of ``cls_label_path`` is
    ``relative/path.jpg label``, paths relative to ``image_root``.

    Args:
        image_root (str): folder the paths are relative to.
        cls_label_path (str): the label list.
        transform_ops (list): transforms, usually starting with DecodeImage.
        delimiter (str, optional): field separator. Default: whitespace.
        skip_bad_images (bool): skip (and count) undecodable images instead of stopping.
        class_names_path (str, optional): file of ``label name`` lines for reports.
    """

    def __init__(self, image_root: str, cls_label_path: str, transform_ops: Optional[list] = None,
                 delimiter: Optional[str] = None, skip_bad_images: bool = False,
                 class_names_path: Optional[str] = None):
        super().__init__(transform_ops, skip_bad_images)
        if not os.path.isdir(image_root):
            raise ValueError(f"image_root is not a folder: {image_root}")
        if not os.path.isfile(cls_label_path):
            raise ValueError(f"cls_label_path not found: {cls_label_path}")
        self.image_root, self.cls_label_path = image_root, cls_label_path
        self.paths, self.lines = [], []
        for number, line in text_lines(cls_label_path):
            if not line.strip():
                continue
            parts = line.strip().split(delimiter)
            try:
                label = int(parts[-1])
            except ValueError:
                label = None
            if len(parts) < 2 or label is None:
                raise ValueError(f"{cls_label_path}:{number}: expected 'relative/path.jpg label', "
                                 f"got {line.strip()!r}")
            self.paths.append((delimiter or " ").join(parts[:-1]))
            self.labels.append(label)
            self.lines.append(number)
        if not self.paths:
            raise ValueError(f"cls_label_path is empty: {cls_label_path}")
        if class_names_path:
            self.class_names = _read_class_names(class_names_path)

    def describe(self, idx):
        return f"{os.path.join(self.image_root, self.paths[idx])} ({self.cls_label_path}:{self.lines[idx]})"

    def _load(self, idx):
        path = os.path.join(self.image_root, self.paths[idx])
        try:
            with open(path, "rb") as f:
                return f.read(), self.labels[idx]
        except OSError as e:
            raise BadImageError(f"cannot read image: {e.strerror}") from None


def _read_class_names(path: str) -> List[str]:
    """``label name`` per line (PaddleClas's class_id_map_file) -> names by label."""
    if not os.path.isfile(path):
        raise ValueError(f"class name file not found: {path}")
    names = {}
    for number, line in text_lines(path):
        if line.strip():
            label, _, name = line.strip().partition(" ")
            if not label.isdigit():
                raise ValueError(f"{path}:{number}: expected 'label name', got {line.strip()!r}")
            names[int(label)] = name.strip() or label
    return [names.get(i, str(i)) for i in range(max(names) + 1)] if names else []


class ImageFolderDataset(ImageDataset):
    """One sub-folder per class (sorted names are labels 0, 1, ...), images inside.

    Args:
        root (str): the folder of class folders.
        transform_ops (list): transforms, usually starting with DecodeImage.
        skip_bad_images (bool): skip (and count) undecodable images instead of stopping.
    """

    def __init__(self, root: str, transform_ops: Optional[list] = None, skip_bad_images: bool = False):
        super().__init__(transform_ops, skip_bad_images)
        if not os.path.isdir(root):
            raise ValueError(f"image folder not found: {root}")
        self.class_names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if not self.class_names:
            raise ValueError(f"{root} has no class sub-folders (expected root/<class>/<image>)")
        self.paths = []
        for label, name in enumerate(self.class_names):
            for dirpath, _, files in sorted(os.walk(os.path.join(root, name))):
                for file in sorted(files):
                    if file.lower().endswith(IMAGE_EXTENSIONS):
                        self.paths.append(os.path.join(dirpath, file))
                        self.labels.append(label)
        if not self.paths:
            raise ValueError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders")

    def describe(self, idx):
        return self.paths[idx]

    def _load(self, idx):
        try:
            with open(self.paths[idx], "rb") as f:
                return f.read(), self.labels[idx]
        except OSError as e:
            raise BadImageError(f"cannot read image: {e.strerror}") from None


class _Cifar(ImageDataset):
    _paddle_cls = None

    def __init__(self, data_file: str, mode: str = "train", transform_ops: Optional[list] = None,
                 skip_bad_images: bool = False):
        super().__init__(transform_ops, skip_bad_images)
        if mode not in ("train", "test"):
            raise ValueError(f"{type(self).__name__}.mode must be 'train' or 'test', got {mode!r}")
        if not os.path.isfile(data_file):
            raise ValueError(f"{type(self).__name__}.data_file not found: {data_file} (the python-version "
                             "archive, e.g. cifar-10-python.tar.gz; nothing is downloaded)")
        self.mode = mode
        self.data = self._paddle_cls(data_file=data_file, mode=mode, download=False, backend="pil")
        self.labels = [int(label) for _, label in self.data.data]

    def describe(self, idx):
        return f"{type(self).__name__} {self.mode} sample {idx}"

    def _load(self, idx):
        image, _ = self.data[idx]  # paddle.vision.datasets gives an RGB PIL image
        return image, self.labels[idx]


class Cifar10(_Cifar):
    """CIFAR-10 from a local ``cifar-10-python.tar.gz`` through ``paddle.vision.datasets``.

    Args:
        data_file (str): the archive.
        mode (str): "train" or "test". Default: "train".
        transform_ops (list): transforms applied to the RGB PIL image.
    """

    _paddle_cls = paddle.vision.datasets.Cifar10


class Cifar100(_Cifar):
    """CIFAR-100 from a local ``cifar-100-python.tar.gz`` (fine labels); as :class:`Cifar10`."""

    _paddle_cls = paddle.vision.datasets.Cifar100


DATASETS = {c.__name__: c for c in (DigitsDataset, ImageNetDataset, ImageFolderDataset, Cifar10, Cifar100)}
