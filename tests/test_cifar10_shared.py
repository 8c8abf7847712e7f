"""Opt-in: the shipped CIFAR-10 configs on the real JPEGs of ../shared/datasets/cifar10
(or $PPZOO_CIFAR10). Skipped where that folder does not exist."""
import os
from pathlib import Path

import pytest

from ppzoo.config import load_config
from ppzoo.data import build_dataset
from ppzoo.engine import train

from conftest import ROOT

CIFAR = Path(os.environ.get("PPZOO_CIFAR10", ROOT.parent / "shared" / "datasets" / "cifar10"))
pytestmark = pytest.mark.skipif(not (CIFAR / "test_2k_list.txt").is_file(), reason=f"no CIFAR-10 at {CIFAR}")


def cifar_config(family, tmp_path, *extra):
    return load_config(str(ROOT / "configs" / "cifar10" / f"{family}.yaml"), [
        f"Global.output_dir={tmp_path}",
        f"DataLoader.Train.dataset.image_root={CIFAR}",
        f"DataLoader.Train.dataset.cls_label_path={CIFAR}/test_2k_list.txt",
        f"DataLoader.Eval.dataset.image_root={CIFAR}",
        f"DataLoader.Eval.dataset.cls_label_path={CIFAR}/test_2k_list.txt",
        f"DataLoader.Eval.dataset.class_names_path={CIFAR}/labels.txt", *extra])


def test_cifar10_lists_and_class_names_load():
    cfg = cifar_config("mobilenet_v2", "/tmp")
    dataset = build_dataset(cfg["DataLoader"]["Eval"]["dataset"], num_classes=10)
    assert len(dataset) == 2000 and dataset.class_names[:2] == ["airplane", "automobile"]
    image, label = dataset[0]
    assert image.shape == (3, 32, 32)


def test_cifar10_config_trains_one_epoch_on_the_real_jpegs(tmp_path):
    cfg = cifar_config("shufflenet_v1", tmp_path, "Arch.name=shufflenet_v1_g3_x0_25", "Global.epochs=1")
    summary = train(cfg)
    first = summary["history"][0]
    assert first["train"]["images"] == 2000 - 2000 % 128  # drop_last
    assert first["eval"]["images"] == 2000 and 0.0 <= first["eval"]["top1"] <= 100.0
