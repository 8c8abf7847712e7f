"""The ``DataLoader`` section: ``Train``/``Eval``, each with ``dataset`` (a registered dataset
and its ``transform_ops``), ``sampler`` and ``loader``."""
from ..config import ConfigError, check_keys, check_list, check_mapping, check_named, register_section, unknown_key
from .datasets import DATASETS
from .transforms import BATCH_TRANSFORMS, TRANSFORMS

__all__ = ["SAMPLER", "LOADER", "check_dataloader"]

SAMPLER = {"name": (str, "DistributedBatchSampler"), "batch_size": (int, 64), "drop_last": (bool, False),
           "shuffle": (bool, False)}
LOADER = {"num_workers": (int, 0), "use_shared_memory": (bool, True)}


def _check_one(dl, where: str) -> dict:
    if not isinstance(dl, dict):
        raise ConfigError(f"'{where}' must be a mapping with dataset, sampler and loader", key=where)
    for key in dl:
        if key not in ("dataset", "sampler", "loader"):
            raise unknown_key(key, ("dataset", "sampler", "loader"), where)
    ds = dl.get("dataset")
    if not isinstance(ds, dict) or "name" not in ds:
        raise ConfigError(f"'{where}.dataset' needs a 'name', one of {', '.join(sorted(DATASETS))}",
                          key=f"{where}.dataset")
    check_named(ds, DATASETS, "dataset", f"{where}.dataset", skip=("transform_ops", "batch_transform_ops"))
    ds = dict(ds, transform_ops=check_list(ds.get("transform_ops"), TRANSFORMS, "transform",
                                           f"{where}.dataset.transform_ops"))
    if ds.get("batch_transform_ops") is not None:
        ds["batch_transform_ops"] = check_list(ds["batch_transform_ops"], BATCH_TRANSFORMS, "batch transform",
                                               f"{where}.dataset.batch_transform_ops")
    sampler = check_keys(dl.get("sampler"), SAMPLER, f"{where}.sampler")
    if sampler["name"] not in ("DistributedBatchSampler", "BatchSampler"):
        raise ConfigError(f"'{where}.sampler.name' must be DistributedBatchSampler or BatchSampler, "
                          f"got {sampler['name']!r}", key=f"{where}.sampler.name")
    if sampler["batch_size"] < 1:
        raise ConfigError(f"'{where}.sampler.batch_size' must be >= 1, got {sampler['batch_size']}",
                          key=f"{where}.sampler.batch_size")
    loader = check_keys(dl.get("loader"), LOADER, f"{where}.loader")
    if loader["num_workers"] < 0:
        raise ConfigError(f"'{where}.loader.num_workers' must be >= 0 (0 loads in the main process), got "
                          f"{loader['num_workers']}", key=f"{where}.loader.num_workers")
    return {"dataset": ds, "sampler": sampler, "loader": loader}


def check_dataloader(section, resolved: dict) -> dict:
    out = {}
    for key, value in check_mapping(section, "DataLoader").items():
        if key not in ("Train", "Eval"):
            raise unknown_key(str(key), ("Train", "Eval"), "DataLoader")
        out[key] = _check_one(value, f"DataLoader.{key}")
    return out


register_section("DataLoader", check_dataloader, order=50)
