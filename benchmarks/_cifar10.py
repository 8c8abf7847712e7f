"""Where the benchmarks find ../shared/datasets/cifar10 and the overrides that point a
config at it (the 10k-image training subset and the 2k test subset of its README)."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANDIDATES = (os.path.join(ROOT, "..", "shared", "datasets", "cifar10"), "/work/shared/datasets/cifar10")


def find_cifar10(path=None):
    """The dataset folder (``path`` if given), or SystemExit saying where it was looked for."""
    for candidate in ([path] if path else CANDIDATES):
        if os.path.isfile(os.path.join(candidate, "train_10k_list.txt")):
            return os.path.abspath(candidate)
    raise SystemExit(f"CIFAR-10 not found in {' or '.join([path] if path else CANDIDATES)} (expected "
                     "train_10k_list.txt there; see ../shared/datasets/cifar10/README.md)")


def cifar10_overrides(data, train_list="train_10k_list.txt", eval_list="test_2k_list.txt"):
    """``-o`` overrides (``KEY=VALUE`` strings) for configs/_base_/datasets/cifar10.yaml; a
    label list is a file name in ``data`` or an absolute path (a subset written elsewhere)."""
    return [f"DataLoader.Train.dataset.image_root={data}/", f"DataLoader.Eval.dataset.image_root={data}/",
            f"DataLoader.Train.dataset.cls_label_path={os.path.join(data, train_list)}",
            f"DataLoader.Eval.dataset.cls_label_path={os.path.join(data, eval_list)}",
            f"DataLoader.Eval.dataset.class_names_path={data}/labels.txt",
            f"Infer.PostProcess.class_id_map_file={data}/labels.txt"]
