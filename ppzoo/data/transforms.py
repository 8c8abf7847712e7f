"""Image transforms by name, as the configs list them.

* PaddleClas's operators (``DecodeImage``, ``ResizeImage``, ``RandCropImage``,
  ``RandFlipImage``, ``CropImage``, ``NormalizeImage``, ``ToCHWImage``), so PaddleClas
  ``transform_ops`` lists run unchanged; they are built on ``paddle.vision.transforms``.
* Every ``paddle.vision.transforms`` class under its own name (``RandomCrop``,
  ``ColorJitter``, ...).
* Batch operators ``MixupOperator`` and ``CutmixOperator`` (``batch_transform_ops``).

Images stay PIL images until ``NormalizeImage`` (``paddle.vision.transforms`` needs OpenCV
for numpy arrays, not for PIL images).
"""
import difflib
import inspect
import io
from typing import List, Optional, Union

import numpy as np
import paddle
import paddle.vision.transforms as T
import paddle.vision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError

from ..registry import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["TRANSFORMS", "BATCH_TRANSFORMS", "Compose", "build_transforms", "BadImageError", "MixupOperator",
           "CutmixOperator"]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "lanczos", "hamming")


class BadImageError(ValueError):
    """An image that cannot be decoded, or that a transform fails on."""


def _to_pil(img):
    if isinstance(img, Image.Image):
        return img
    if isinstance(img, np.ndarray) and img.ndim in (2, 3):
        return Image.fromarray(img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8))
    raise TypeError(f"expected a PIL image or an HWC uint8 array, got {type(img).__name__}")


def _interpolation(name: Optional[str]) -> str:
    if name is None:
        return "bilinear"
    name = name.lower()
    if name not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {name!r}")
    return name


class DecodeImage:
    """Decode image bytes to an RGB PIL image (PaddleClas ``DecodeImage``).

    Args:
        to_rgb (bool): RGB (True) or OpenCV's BGR channel order as an array (False). Default: True.
        channel_first (bool): return a CHW array right away. Default: False.
    """

    def __init__(self, to_rgb: bool = True, channel_first: bool = False):
        self.to_rgb, self.channel_first = to_rgb, channel_first

    def __call__(self, img):
        if isinstance(img, (bytes, bytearray)):
            try:
                img = Image.open(io.BytesIO(img))
                img.load()
            except UnidentifiedImageError:  # its message names the BytesIO object, not the file
                raise BadImageError("cannot decode image: not in a format PIL reads, or corrupt") from None
            except (OSError, ValueError) as e:
                raise BadImageError(f"cannot decode image: {e}") from None
        img = _to_pil(img).convert("RGB")
        if not self.to_rgb:
            img = np.ascontiguousarray(np.asarray(img)[:, :, ::-1])
        if self.channel_first:
            img = np.asarray(img).transpose(2, 0, 1)
        return img


class ResizeImage:
    """Resize to ``size`` (int or [w, h]) or so that the short side is ``resize_short``
    (PaddleClas ``ResizeImage``; always PIL, ``backend`` is accepted for compatibility)."""

    def __init__(self, size: Optional[Union[int, List[int]]] = None, resize_short: Optional[int] = None,
                 interpolation: Optional[str] = None, backend: str = "pil", return_numpy: bool = False):
        if (size is None) == (resize_short is None):
            raise ValueError("ResizeImage needs exactly one of size or resize_short")
        self.size, self.resize_short = size, resize_short
        self.interpolation = _interpolation(interpolation)

    def __call__(self, img):
        img = _to_pil(img)
        if self.resize_short is not None:
            w, h = img.size
            scale = self.resize_short / min(w, h)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
        elif isinstance(self.size, int):
            size = (self.size, self.size)
        else:
            size = (self.size[1], self.size[0])  # PaddleClas gives [w, h]
        return TF.resize(img, size, self.interpolation)


class RandCropImage:
    """Random-resized crop (Inception-style; PaddleClas ``RandCropImage``)."""

    def __init__(self, size: Union[int, List[int]], scale: Optional[List[float]] = None,
                 ratio: Optional[List[float]] = None, interpolation: Optional[str] = None, backend: str = "pil",
                 use_log_aspect: bool = False):
        if use_log_aspect:
            raise ValueError("RandCropImage.use_log_aspect is not supported (aspect ratios are drawn uniformly)")
        self.op = T.RandomResizedCrop(size, scale=tuple(scale or (0.08, 1.0)), ratio=tuple(ratio or (3 / 4, 4 / 3)),
                                      interpolation=_interpolation(interpolation))

    def __call__(self, img):
        return self.op(_to_pil(img))


class RandFlipImage:
    """Flip with probability 0.5: ``flip_code`` 1 horizontal, 0 vertical, -1 both."""

    def __init__(self, flip_code: int = 1):
        if flip_code not in (1, 0, -1):
            raise ValueError(f"RandFlipImage.flip_code must be 1, 0 or -1, got {flip_code}")
        self.flip_code = flip_code

    def __call__(self, img):
        img = _to_pil(img)
        if np.random.randint(2) == 0:
            return img
        if self.flip_code in (1, -1):
            img = TF.hflip(img)
        if self.flip_code in (0, -1):
            img = TF.vflip(img)
        return img


class CropImage:
    """Centre crop to ``size`` (int or [w, h]; PaddleClas ``CropImage``)."""

    def __init__(self, size: Union[int, List[int]]):
        self.size = (size, size) if isinstance(size, int) else (size[1], size[0])

    def __call__(self, img):
        img = _to_pil(img)
        w, h = img.size
        if w < self.size[1] or h < self.size[0]:
            raise ValueError(f"CropImage: image {w}x{h} is smaller than the crop {self.size[1]}x{self.size[0]}")
        return TF.center_crop(img, self.size)


def _number(value) -> float:
    """PaddleClas writes ``scale: 1.0/255.0`` (a string it evaluates); read "a/b" without eval."""
    if isinstance(value, str):
        parts = value.split("/")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"expected a number or 'a/b', got {value!r}") from None
        if len(nums) > 2 or (len(nums) == 2 and nums[1] == 0):
            raise ValueError(f"expected a number or 'a/b', got {value!r}")
        return nums[0] / nums[1] if len(nums) == 2 else nums[0]
    return float(value)


class NormalizeImage:
    """``(img * scale - mean) / std`` as float32 (PaddleClas ``NormalizeImage``).

    Args:
        scale (float or "a/b"): Default: 1/255.
        mean, std (list of float): per channel. Default: ImageNet's.
        order (str): "chw" transposes, "hwc" or "" keeps the layout. Default: "chw".
        output_fp16 (bool): return float16. Default: False.
        channel_num (int): 3, or 4 to append a zero channel. Default: 3.
    """

    def __init__(self, scale: Optional[Union[float, str]] = None, mean: Optional[List[float]] = None,
                 std: Optional[List[float]] = None, order: str = "chw", output_fp16: bool = False,
                 channel_num: int = 3):
        if order.lower() not in ("chw", "hwc", ""):
            raise ValueError(f"NormalizeImage.order must be 'chw', 'hwc' or '', got {order!r}")
        self.scale = _number(scale) if scale is not None else 1.0 / 255.0
        self.mean = np.array(mean if mean is not None else IMAGENET_MEAN, dtype="float32")
        self.std = np.array(std if std is not None else IMAGENET_STD, dtype="float32")
        self.chw, self.fp16, self.channel_num = order.lower() == "chw", output_fp16, channel_num

    def __call__(self, img):
        arr = np.asarray(img, dtype="float32")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        arr = (arr * self.scale - self.mean) / self.std
        if self.channel_num == 4:
            arr = np.concatenate([arr, np.zeros_like(arr[:, :, :1])], axis=2)
        if self.chw:
            arr = arr.transpose(2, 0, 1)
        return arr.astype("float16" if self.fp16 else "float32")


class ToCHWImage:
    """HWC array -> CHW array (PaddleClas ``ToCHWImage``)."""

    def __call__(self, img):
        return np.asarray(img).transpose(2, 0, 1)


def _vision_transform(cls):
    """Wrap a ``paddle.vision.transforms`` class so numpy inputs become PIL images first."""

    def build(*args, **kwargs):
        op = cls(*args, **kwargs)

        def apply(img):
            return op(_to_pil(img) if isinstance(img, np.ndarray) and img.dtype == np.uint8 else img)

        apply.op = op
        return apply

    build.__signature__ = inspect.signature(cls.__init__)
    build.__wrapped__ = cls
    return build


_PADDLECLAS_OPS = {c.__name__: c for c in (DecodeImage, ResizeImage, RandCropImage, RandFlipImage, CropImage,
                                            NormalizeImage, ToCHWImage)}
_VISION_OPS = {name: _vision_transform(getattr(T, name)) for name in T.__all__
               if inspect.isclass(getattr(T, name)) and issubclass(getattr(T, name), T.BaseTransform)
               and name not in ("BaseTransform", "Compose")}
TRANSFORMS = {**_VISION_OPS, **_PADDLECLAS_OPS}  # name -> class (or builder) taking the config params
_CHW_OPS = ("ToCHWImage", "ToTensor", "Transpose")


class Compose:
    """Apply transform ops in order; ``chw`` tells whether the output is already CHW.

    Any error of an op (a crop larger than the image, a bad array) is raised as
    :class:`BadImageError` naming the op, so the data loader can name the file and the
    transform (or skip the image) instead of failing with the op's bare message.
    """

    def __init__(self, ops: list, chw: bool, names: Optional[List[str]] = None):
        self.ops, self.chw = ops, chw
        self.names = list(names) if names is not None else [type(op).__name__ for op in ops]

    def __call__(self, img):
        for name, op in zip(self.names, self.ops):
            try:
                img = op(img)
            except BadImageError:
                raise
            except Exception as e:  # noqa: BLE001 -- any failure on one image is that image's error
                raise BadImageError(f"transform {name} failed: {type(e).__name__}: {e}") from e
        return img


def build_transforms(op_list: Optional[list]) -> Compose:
    """``[{"DecodeImage": {...}}, {"ToCHWImage": None}, ...]`` -> :class:`Compose`."""
    ops, names, chw = [], [], False
    for entry in op_list or []:
        name, params = next(iter(entry.items())) if isinstance(entry, dict) else (entry, None)
        if name not in TRANSFORMS:
            close = difflib.get_close_matches(str(name), list(TRANSFORMS), n=3, cutoff=0.5)
            raise ValueError(f"unknown transform '{name}'" + (f"; did you mean {' or '.join(close)}?" if close else ""))
        try:
            ops.append(TRANSFORMS[name](**(params or {})))
        except (TypeError, ValueError) as e:
            raise ValueError(f"transform {name}: {e}") from None
        names.append(str(name))
        if name in _CHW_OPS:
            chw = True
        elif name == "NormalizeImage":
            chw = ops[-1].chw
        elif name == "DecodeImage":
            chw = bool((params or {}).get("channel_first", False))
    return Compose(ops, chw, names)


def _one_hot(labels: paddle.Tensor, num_classes: int) -> paddle.Tensor:
    return paddle.nn.functional.one_hot(labels.astype("int64").flatten(), num_classes)


class MixupOperator:
    """mixup (Zhang et al., arXiv 1710.09412): blend two images and their labels with
    lambda ~ Beta(alpha, alpha). Returns images and soft labels."""

    def __init__(self, alpha: float = 0.2):
        if alpha <= 0:
            raise ValueError(f"MixupOperator.alpha must be > 0, got {alpha}")
        self.alpha = alpha

    def __call__(self, images, labels, num_classes: int, rng: np.random.Generator):
        lam = float(rng.beta(self.alpha, self.alpha))
        perm = paddle.to_tensor(rng.permutation(images.shape[0]))
        target = _one_hot(labels, num_classes)
        mixed = lam * images + (1 - lam) * paddle.gather(images, perm)
        return mixed, lam * target + (1 - lam) * paddle.gather(target, perm)


class CutmixOperator:
    """CutMix (Yun et al., arXiv 1905.04899): paste a random box from another image; labels
    mix by the box's area."""

    def __init__(self, alpha: float = 0.2):
        if alpha <= 0:
            raise ValueError(f"CutmixOperator.alpha must be > 0, got {alpha}")
        self.alpha = alpha

    def __call__(self, images, labels, num_classes: int, rng: np.random.Generator):
        n, _, h, w = images.shape
        lam = float(rng.beta(self.alpha, self.alpha))
        cut_h, cut_w = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
        cy, cx = rng.integers(h), rng.integers(w)
        y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, h)
        x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, w)
        perm = paddle.to_tensor(rng.permutation(n))
        mask = np.ones([1, 1, h, w], dtype="float32")
        mask[:, :, y0:y1, x0:x1] = 0.0
        mask = paddle.to_tensor(mask)
        mixed = images * mask + paddle.gather(images, perm) * (1 - mask)
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        target = _one_hot(labels, num_classes)
        return mixed, lam * target + (1 - lam) * paddle.gather(target, perm)


BATCH_TRANSFORMS = {"MixupOperator": MixupOperator, "CutmixOperator": CutmixOperator}
