"""Datasets, transforms and loaders built from config sections."""
from .datasets import DATASETS, Cifar10, Cifar100, DigitsDataset, ImageDataset, ImageFolderDataset, ImageNetDataset
from .loader import build_batch_transforms, build_dataloader, build_dataset, make_batch_transform
from .calibration import sample_images
from . import spec  # noqa: F401  (registers the DataLoader config section)
from .transforms import BATCH_TRANSFORMS, TRANSFORMS, BadImageError, build_transforms

__all__ = ["DATASETS", "TRANSFORMS", "BATCH_TRANSFORMS", "BadImageError", "Cifar10", "Cifar100", "DigitsDataset",
           "ImageDataset", "ImageFolderDataset", "ImageNetDataset", "build_batch_transforms", "build_dataloader",
           "build_dataset", "build_transforms", "sample_images"]
