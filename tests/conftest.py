"""Shared fixtures: CPU, fixed seeds, the reference table, a temporary run folder."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = yaml.safe_load((ROOT / "tests" / "reference_models.yaml").read_text())

paddle.set_device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(0)
    np.random.seed(0)


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
