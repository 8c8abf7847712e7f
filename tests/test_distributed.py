"""Data-parallel training with Paddle's launcher: 2 CPU processes talking over gloo."""
import json
import subprocess
import sys

from test_train import out_dir, tiny_config

from conftest import ROOT


def test_two_process_training_end_to_end(tmp_path):
    # ReduceOnPlateau on the training loss: the ranks decide on their mean loss (a collective in its hook);
    # threshold 0.5 makes epoch 2 a plateau, so epoch 3 runs at a tenth of the rate
    cfg = tiny_config(tmp_path, **{"Global.epochs": 3, "Optimizer.base_batch_size": 32, "Optimizer.lr": {
        "name": "ReduceOnPlateau", "learning_rate": 0.001, "monitor": "train_loss", "patience": 0, "threshold": 0.5}})
    result = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
         str(tmp_path / "launch"), "tools/train.py", "-c", cfg],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    workers = {i: (tmp_path / "launch" / f"workerlog.{i}").read_text() for i in (0, 1)}
    assert result.returncode == 0, workers[0][-2000:] + workers[1][-2000:]
    assert "2 process(es), global batch 64" in workers[0] and "epoch 3/3 train loss" in workers[0]
    assert "epoch 3/3" not in workers[1]  # only rank 0 logs
    out = out_dir(tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    first = metrics["history"][0]
    # 359 training images: each rank gets ceil(359 / 2) = 180, i.e. 5 full batches of 32 with drop_last
    assert first["train"]["steps"] == 5 and first["train"]["images"] == 160
    assert first["eval"]["images"] == 359  # each validation image counted exactly once over both ranks
    assert abs(first["lr"] - 0.002) < 1e-12  # 0.001 scaled by global batch 64 / base 32
    assert [round(h["lr"], 12) for h in metrics["history"]] == [0.002, 0.002, 0.0002]
    log = (out / "train.log").read_text()
    assert log.count("epoch 3/3 train loss") == 1
