"""The main job (configs/shufflenet.yaml) builds the model the docs describe, and the docs
quote what its recorded runs measured (docs/results/main_job.json, benchmarks/main_job.py)."""
import json
import re
from pathlib import Path

import paddle

from ppzoo.config import load_config
from ppzoo.engine.builders import build_model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "shufflenet.yaml"


def _main_job():
    cfg = load_config(str(CONFIG))
    return cfg, build_model(cfg["Arch"])  # the call tools/train.py makes


def test_main_job_is_small_input_shufflenet_on_32x32():
    cfg, model = _main_job()
    assert cfg["Arch"]["name"] == "shufflenet_v1_g3_x1_0"
    assert cfg["Global"]["image_shape"] == [3, 32, 32]
    assert cfg["DataLoader"]["Train"]["dataset"]["image_size"] == 32
    assert model.small_input is True
    model.eval()
    with paddle.no_grad():
        features = model.forward_features(paddle.zeros([1, *cfg["Global"]["image_shape"]]))
    # small input: stem stride 1, no max-pool, 8x downsampling -> 4x4 (ImageNet mode: 1x1)
    assert features.shape == [1, model.num_features, 4, 4]


def test_docs_quote_the_recorded_main_job_runs():
    cfg, model = _main_job()
    results = json.loads((ROOT / "docs" / "results" / "main_job.json").read_text())
    assert results["config"] == "configs/shufflenet.yaml"
    assert results["epochs"] == cfg["Global"]["epochs"]
    mode = "on" if model.small_input else "off"
    summary = results["summary"][mode]
    runs = [r for r in results["runs"] if r["small_input"] == model.small_input]
    assert len(runs) >= 3
    top1 = summary["best_top1"]
    training = (ROOT / "docs" / "training.md").read_text()
    quoted = f"{top1['mean']:.2f} % ({top1['min']:.2f}-{top1['max']:.2f} %)"
    assert quoted in training, f"docs/training.md should quote the measured best top-1 {quoted}"
    readme = (ROOT / "README.md").read_text()
    claimed = re.search(r"~([\d.]+) % validation top-1", readme)
    assert claimed, "README.md should state the main job's validation top-1 as '~X % validation top-1'"
    assert abs(float(claimed.group(1)) - top1["mean"]) < 0.5
