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
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd or ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
