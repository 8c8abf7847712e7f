"""Shared fixtures: CPU, fixed seeds, tiny training configs, one model per family."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

paddle.set_device("cpu")


@pytest.fixture(autouse=True)
def _default_signal_handlers():
    """Every test starts with Python's own SIGINT/SIGTERM handlers: in the full suite some
    earlier in-process code (not yet identified) leaves a SIGINT handler that does not raise
    KeyboardInterrupt, which the interruption tests depend on."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(0)
    np.random.seed(0)


def randomise_weights(model, seed=0):
    """Random weights everywhere, BN running statistics included, and eval mode: a freshly
    initialised model in eval mode can output near-zero logits, which would let any
    comparison pass, and a swapped or mis-mapped tensor shows only with random values."""
    rng = np.random.default_rng(seed)
    state = {}
    for k, v in model.state_dict().items():
        shape = list(v.shape)
        if k.endswith("_variance"):
            value = rng.random(shape) + 0.5
        elif len(shape) >= 2:  # conv [out, in/g, k, k] and linear [in, out]: keep activations O(1)
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            value = rng.standard_normal(shape) / np.sqrt(fan_in)
        else:
            value = rng.standard_normal(shape) * 0.1
        state[k] = value.astype("float32")
    model.set_state_dict(state)
    model.eval()
    return model


def run_tool(*args, cwd=None, env=None, timeout=300):
    """Run ``python tools/<args>`` and return the CompletedProcess (text, never raises)."""
    full_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # paddle warns when it is > 1
    full_env.update(env or {})
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd or ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def make_image_tree(root, classes=3, per_class=4, size=20, corrupt=()):
    """Write a tiny JPEG data set: ``root/<class>/<i>.jpg`` plus a PaddleClas label list
    ``root/list.txt``; the names in ``corrupt`` are written as garbage bytes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = []
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rel = f"c{c}/{i}.jpg"
            if rel in corrupt:
                (root / rel).write_bytes(b"this is not a jpeg")
            else:
                pixels = (rng.random((size, size, 3)) * 60 + c * 80).astype("uint8")
                Image.fromarray(pixels).save(root / rel, quality=95)
            lines.append(f"{rel} {c}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root


NORMALIZE = {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.5] * 3, "std": [0.5] * 3}}


def tiny_config(tmp_path, **overrides):
    """mobilenet_v1_x0_25 on 16x16 digits, 359 training images: about a second per epoch.
    Too short to learn much; ``LEARNS`` overrides give a run that does."""
    cfg = {
        "Global": {"output_dir": str(tmp_path / "out"), "epochs": 2, "print_batch_step": 5, "class_num": 10,
                   "save_interval": 1, "seed": 3, "device": "cpu"},
        "Arch": {"name": "mobilenet_v1_x0_25"},
        "Optimizer": {"name": "AdamW", "weight_decay": 1e-4, "lr": {"name": "Cosine", "learning_rate": 0.005}},
        "DataLoader": {
            "Train": {"dataset": {"name": "DigitsDataset", "image_size": 16, "val_fraction": 0.8, "transform_ops": [
                {"RandomCrop": {"size": 16, "padding": 2}}, NORMALIZE]},
                "sampler": {"batch_size": 32, "shuffle": True, "drop_last": True}},
            "Eval": {"dataset": {"name": "DigitsDataset", "split": "val", "image_size": 16,
                                 "transform_ops": [NORMALIZE]},
                     "sampler": {"batch_size": 128}},
        },
    }
    for key, value in overrides.items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


# ShuffleNetV1 0.5x (g=3) in small-input mode on all 1,438 training digits: ~90 % in 2 epochs
LEARNS = {"Arch.name": "shufflenet_v1_g3_x0_5", "Arch.small_input": True, "DataLoader.Train.dataset.val_fraction": 0.2}


def out_dir(tmp_path, arch="mobilenet_v1_x0_25"):
    return tmp_path / "out" / arch


def one_per_family() -> dict:
    """family -> its registered variant with the fewest published parameters (untagged):
    per-family tests take their models from here, so a new family is covered the day it
    registers."""
    import math

    import ppzoo

    best = {}
    for name in ppzoo.list_models():
        if "." in name:  # tagged layouts (.paddleclas) are covered by the registry-wide tests
            continue
        info = ppzoo.model_info(name)
        key = (info.params if info.params is not None else math.inf, name)
        if info.family not in best or key < best[info.family][0]:
            best[info.family] = (key, name)
    return {family: name for family, (_, name) in sorted(best.items())}
