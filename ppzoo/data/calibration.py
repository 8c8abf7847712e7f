"""Calibration images: a seeded random sample of the training set with the deployed
(evaluation) preprocessing, for the compression passes that look at activations (int8
post-training quantization, data-aware low-rank factorisation)."""
import numpy as np

from .loader import build_dataset

__all__ = ["sample_images"]


def sample_images(cfg: dict, count: int, seed: int = 0, key: str = "calibration images") -> np.ndarray:
    """``count`` images of ``DataLoader.Train``'s dataset, drawn at random (seeded) and
    transformed with ``DataLoader.Eval``'s transforms, as one float32 NCHW array.

    Args:
        cfg (dict): a resolved config.
        count (int): how many images.
        seed (int): the draw's seed. Default: 0.
        key (str): what asked for them, named in the errors (e.g. the config key).

    Raises:
        ValueError: no training set, too few images, or too few that decode.
    """
    loaders = cfg.get("DataLoader") or {}
    if "Train" not in loaders:
        raise ValueError(f"{key}: calibration takes training images; the config needs DataLoader.Train")
    dataset_cfg = dict(loaders["Train"]["dataset"])
    eval_ops = ((loaders.get("Eval") or {}).get("dataset") or {}).get("transform_ops")
    if eval_ops:
        dataset_cfg["transform_ops"] = eval_ops
    dataset_cfg.pop("batch_transform_ops", None)
    try:
        dataset = build_dataset(dataset_cfg)
    except ValueError as e:
        raise ValueError(f"calibration set (DataLoader.Train.dataset): {e}") from None
    if len(dataset) < count:
        raise ValueError(f"calibration set DataLoader.Train.dataset has {len(dataset)} images, fewer than "
                         f"{key} = {count}; ask for fewer")
    order = np.random.default_rng(seed).permutation(len(dataset))
    images = []
    for idx in order:
        image, _ = dataset[int(idx)]
        if image is not None:  # an undecodable image: take the next one
            images.append(image)
        if len(images) == count:
            break
    if len(images) < count:
        raise ValueError(f"calibration set: only {len(images)} of the {count} images needed could be decoded")
    return np.stack(images).astype("float32")
