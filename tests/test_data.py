"""Datasets and transforms on tiny data."""
import pickle
import tarfile

import numpy as np
import paddle
import pytest
from PIL import Image

from ppzoo.data import (BadImageError, Cifar10, Cifar100, DigitsDataset, ImageFolderDataset, ImageNetDataset,
                        build_dataloader, build_dataset, build_transforms)
from ppzoo.data.transforms import CutmixOperator, MixupOperator

from conftest import make_image_tree

PADDLECLAS_EVAL_OPS = [
    {"DecodeImage": {"to_rgb": True, "channel_first": False}},
    {"ResizeImage": {"resize_short": 16}},
    {"CropImage": {"size": 12}},
    {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                        "order": ""}},
]


def test_digits_split_is_fixed_stratified_and_disjoint():
    train, val = DigitsDataset("train"), DigitsDataset("val")
    assert len(train) + len(val) == 1797
    assert set(train.indices).isdisjoint(val.indices)
    counts = np.bincount(val.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # ~20 % of each of ~180 per class
    assert np.array_equal(DigitsDataset("val").indices, val.indices)
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32 and label.dtype == np.int64
    assert np.array_equal(image[0], image[1])  # grey digits in 3 identical channels


def test_paddleclas_transform_chain_matches_a_hand_computed_result(tmp_path):
    make_image_tree(tmp_path, classes=1, per_class=1, size=20)
    raw = (tmp_path / "c0" / "0.jpg").read_bytes()
    out = build_transforms(PADDLECLAS_EVAL_OPS)(raw)
    img = Image.open(tmp_path / "c0" / "0.jpg").convert("RGB").resize((16, 16), Image.BILINEAR).crop((2, 2, 14, 14))
    expected = (np.asarray(img, dtype="float32") / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert out.shape == (12, 12, 3)  # order '' keeps HWC; the dataset transposes at the end
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_imagenet_dataset_reads_label_list_and_transposes(tmp_path):
    root = make_image_tree(tmp_path)
    ds = ImageNetDataset(str(root), str(root / "list.txt"), PADDLECLAS_EVAL_OPS)
    assert len(ds) == 12 and ds.labels[:5] == [0, 0, 0, 0, 1]
    image, label = ds[5]
    assert image.shape == (3, 12, 12) and int(label) == 1


def test_image_folder_dataset(tmp_path):
    root = make_image_tree(tmp_path / "imgs", classes=2, per_class=3)
    (root / "list.txt").unlink()
    ds = ImageFolderDataset(str(root), [{"DecodeImage": None}, {"NormalizeImage": {}}])
    assert ds.class_names == ["c0", "c1"] and ds.labels == [0, 0, 0, 1, 1, 1]
    assert ds[0][0].shape == (3, 20, 20)


@pytest.mark.parametrize("cls,archive,members,label_key", [
    (Cifar10, "cifar-10-python.tar.gz", ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"),
     b"labels"),
    (Cifar100, "cifar-100-python.tar.gz", ("cifar-100-python/train", "cifar-100-python/test"), b"fine_labels"),
])
def test_cifar_from_a_local_archive(tmp_path, cls, archive, members, label_key):
    rng = np.random.default_rng(0)
    path = tmp_path / archive
    with tarfile.open(path, "w:gz") as tar:
        for member, n in zip(members, (6, 4)):
            blob = pickle.dumps({b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                                 label_key: [7 * i for i in range(n)]})
            file = tmp_path / "blob"
            file.write_bytes(blob)
            tar.add(file, arcname=member)
    train = cls(str(path), "train", [{"NormalizeImage": {}}])
    test = cls(str(path), "test")
    assert (len(train), len(test)) == (6, 4) and train.labels == [0, 7, 14, 21, 28, 35]
    assert train[0][0].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="data_file not found: .*nothing is downloaded"):
        cls(str(tmp_path / "none.tar.gz"))


def test_missing_and_empty_data_paths(tmp_path):
    with pytest.raises(ValueError, match="image_root is not a folder: .*nowhere"):
        ImageNetDataset(str(tmp_path / "nowhere"), str(tmp_path / "list.txt"))
    with pytest.raises(ValueError, match="cls_label_path not found"):
        ImageNetDataset(str(tmp_path), str(tmp_path / "list.txt"))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="cls_label_path is empty"):
        ImageNetDataset(str(tmp_path), str(tmp_path / "empty.txt"))
    (tmp_path / "bad.txt").write_text("a.jpg 0\nb.jpg x\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'relative/path.jpg label'"):
        ImageNetDataset(str(tmp_path), str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolderDataset(str(tmp_path))


def test_label_outside_class_range_names_the_file_and_line(tmp_path):
    root = make_image_tree(tmp_path)
    cfg = {"name": "ImageNetDataset", "image_root": str(root), "cls_label_path": str(root / "list.txt")}
    build_dataset(cfg, num_classes=3)
    with pytest.raises(ValueError, match=r"label 2 of .*c2/0.jpg \(.*list.txt:9\) is outside \[0, 2\) "
                                         r"\(4 such samples\); set Arch.class_num"):
        build_dataset(cfg, num_classes=2)


def test_corrupt_image_is_named_or_skipped_and_counted(tmp_path):
    root = make_image_tree(tmp_path, corrupt=("c1/2.jpg",))
    ops = [{"DecodeImage": None}, {"NormalizeImage": {}}]
    ds = ImageNetDataset(str(root), str(root / "list.txt"), ops)
    assert ds[6][0] is None and int(ds[6][1]) == 6  # a worker cannot raise a readable error
    with pytest.raises(BadImageError, match=r"c1/2.jpg \(.*list.txt:7\): cannot decode image.*skip_bad_images"):
        ds.check_image(6)
    section = {"dataset": {"name": "ImageNetDataset", "image_root": str(root), "cls_label_path": str(root / "list.txt"),
                           "transform_ops": ops, "skip_bad_images": True},
               "sampler": {"batch_size": 4, "shuffle": False, "drop_last": False, "name": "DistributedBatchSampler"},
               "loader": {"num_workers": 0, "use_shared_memory": False}}
    batches = list(build_dataloader(section, train=True, num_classes=3))
    assert sum(b[2] for b in batches) == 1
    assert sum(b[0].shape[0] for b in batches) == 11
    # with worker processes the error still names the file (raised in the main process)
    section["dataset"]["skip_bad_images"] = False
    section["loader"]["num_workers"] = 2
    with pytest.raises(BadImageError, match=r"c1/2.jpg \(.*list.txt:7\): cannot decode image"):
        list(build_dataloader(section, train=True, num_classes=3))


def test_augmentation_is_reproducible_per_epoch_and_sample(tmp_path):
    ops = [{"RandomCrop": {"size": 32, "padding": 4}}, {"RandFlipImage": {"flip_code": 1}}, {"NormalizeImage": {}}]
    ds = DigitsDataset("train", transform_ops=ops)
    ds.set_epoch(3, seed=1)
    a = [ds[i][0] for i in range(8)]
    ds.set_epoch(4, seed=1)
    b = [ds[i][0] for i in range(8)]
    ds.set_epoch(3, seed=1)
    c = [ds[i][0] for i in reversed(range(8))][::-1]  # order of access does not matter
    assert all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_mixup_and_cutmix_give_soft_labels_that_sum_to_one():
    images = paddle.rand([4, 3, 8, 8])
    labels = paddle.to_tensor([0, 1, 2, 3])
    for op in (MixupOperator(0.4), CutmixOperator(1.0)):
        mixed, target = op(images, labels, 5, np.random.default_rng(0))
        assert mixed.shape == images.shape and target.shape == [4, 5]
        np.testing.assert_allclose(target.sum(axis=1).numpy(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        MixupOperator(0)


def test_bad_transform_parameters_name_the_transform():
    with pytest.raises(ValueError, match="transform ResizeImage: ResizeImage needs exactly one of size or resize_short"):
        build_transforms([{"ResizeImage": {}}])
    with pytest.raises(ValueError, match="transform NormalizeImage: .*expected a number or 'a/b'"):
        build_transforms([{"NormalizeImage": {"scale": "1/x"}}])
