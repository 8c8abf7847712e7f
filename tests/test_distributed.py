"""Data-parallel training with Paddle's launcher: 2 CPU processes talking over gloo."""
import json
import subprocess
import sys

from test_train import out_dir, tiny_config

from conftest import ROOT


def test_two_process_training_end_to_end(tmp_path):
    cfg = tiny_config(tmp_path, **{"Global.epochs": 2, "Optimizer.lr": {"name": "Constant", "learning_rate": 0.001},
                                   "Optimizer.base_batch_size": 32})
    result = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
         str(tmp_path / "launch"), "tools/train.py", "-c", cfg],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    workers = {i: (tmp_path / "launch" / f"workerlog.{i}").read_text() for i in (0, 1)}
    assert result.returncode == 0, workers[0][-2000:] + workers[1][-2000:]
    assert "2 process(es), global batch 64" in workers[0] and "epoch 2/2 train loss" in workers[0]
    assert "epoch 2/2" not in workers[1]  # only rank 0 logs
    out = out_dir(tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    first = metrics["history"][0]
    # 359 training images: each rank gets ceil(359 / 2) = 180, i.e. 5 full batches of 32 with drop_last
    assert first["train"]["steps"] == 5 and first["train"]["images"] == 160
    assert first["eval"]["images"] == 359  # each validation image counted exactly once over both ranks
    assert abs(first["lr"] - 0.002) < 1e-12  # 0.001 scaled by global batch 64 / base 32
    log = (out / "train.log").read_text()
    assert log.count("epoch 2/2 train loss") == 1
