"""End-to-end training on tiny data: results, checkpoints, exact resume, and failures."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest
import yaml

from ppzoo.config import ConfigError, load_config
from ppzoo.engine import evaluate_config, train
from ppzoo.engine.checkpoint import atomic_save
from ppzoo.engine.loop import NonFiniteLossError
from ppzoo.utils.weights import WeightsError, read_state_dict

from conftest import LEARNS, NORMALIZE, ROOT, make_image_tree, out_dir, run_tool, tiny_config


def test_train_writes_results_checkpoints_and_logs(tmp_path):
    cfg = load_config(tiny_config(tmp_path, **LEARNS, **{"Global.use_visualdl": True}))
    handler = signal.getsignal(signal.SIGTERM)
    summary = train(cfg)
    assert signal.getsignal(signal.SIGTERM) is handler  # kill-as-Ctrl-C only while training
    out = out_dir(tmp_path, LEARNS["Arch.name"])
    assert summary["epochs"] == 2 and summary["best"]["top1"] > 60.0  # chance is 10 %
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best"] == summary["best"] and len(metrics["history"]) == 2
    assert {"top1", "top5", "loss"} <= set(metrics["last"]) and metrics["train_images_per_s"] > 0
    for name in ("latest.pdckpt", "latest.pdparams", "epoch_1.pdckpt", "epoch_2.pdparams", "best_model.pdparams",
                 "train.log"):
        assert (out / name).is_file(), name
    log = (out / "train.log").read_text()
    assert "epoch 2/2 train loss" in log and "Done: 2 epochs" in log
    assert any((out / "vdl").iterdir())
    result = evaluate_config(load_config(tiny_config(tmp_path, **LEARNS),
                                         [f"Global.pretrained_model={out / 'best_model'}"]))
    assert result["top1"] == pytest.approx(summary["best"]["top1"])
    assert result["images"] == 359


def test_resume_ends_with_the_same_weights(tmp_path):
    """Dropout, mixup, random crops, EMA and a cosine schedule all continue exactly."""
    extra = {"Arch.drop_rate": 0.2, "EMA": {"decay": 0.99}, "Global.epochs": 3, "DataLoader.Train.dataset.batch_transform_ops": [
        {"MixupOperator": {"alpha": 0.2}}, {"CutmixOperator": {"alpha": 0.5}}]}
    train(load_config(tiny_config(tmp_path / "a", **extra)))
    full = out_dir(tmp_path / "a")
    resumed_cfg = tiny_config(tmp_path / "b", **extra, **{"Global.checkpoints": str(full / "epoch_2")})
    train(load_config(resumed_cfg))
    resumed = out_dir(tmp_path / "b")
    a, b = read_state_dict(str(full / "latest.pdparams")), read_state_dict(str(resumed / "latest.pdparams"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    ema_a = paddle.load(str(full / "latest.pdckpt"))["hooks"]["ema"]["module"]
    ema_b = paddle.load(str(resumed / "latest.pdckpt"))["hooks"]["ema"]["module"]
    np.testing.assert_array_equal(ema_a["fc.weight"].numpy(), ema_b["fc.weight"].numpy())
    history = json.loads((resumed / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_reduce_on_plateau_resumes_with_its_counters(tmp_path):
    """The plateau's best, bad-epoch count, cooldown and reduced rate live in the checkpoint
    (inside the warm-up wrapper's state): a run resumed from epoch 2, when one bad epoch is
    counted, cuts at the same epoch and ends with the same weights."""
    extra = {"Global.epochs": 4, "Optimizer.lr": {"name": "ReduceOnPlateau", "learning_rate": 0.05, "warmup_epoch": 1,
                                                  "monitor": "train_loss", "patience": 1, "cooldown": 1,
                                                  "threshold": 0.5}}
    full_summary = train(load_config(tiny_config(tmp_path / "a", **extra)))
    full = out_dir(tmp_path / "a")
    rates = [h["lr"] for h in full_summary["history"]]
    # threshold 0.5: no epoch improves on the first; epochs 2 and 3 are bad (> patience 1) -> cut after epoch 3
    assert rates[1:3] == pytest.approx([0.05, 0.05]) and rates[3] == pytest.approx(0.005)
    state = paddle.load(str(full / "epoch_2.pdckpt"))["optimizer"]["LR_Scheduler"]["LinearWarmup_LR"]
    assert state["num_bad"] == 1 and state["best"] is not None
    train(load_config(tiny_config(tmp_path / "b", **extra, **{"Global.checkpoints": str(full / "epoch_2")})))
    resumed = out_dir(tmp_path / "b")
    history = json.loads((resumed / "metrics.json").read_text())["history"]
    assert [h["lr"] for h in history] == pytest.approx(rates)
    a, b = read_state_dict(str(full / "latest.pdparams")), read_state_dict(str(resumed / "latest.pdparams"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_reduce_on_plateau_on_the_eval_loss_needs_an_evaluating_run(tmp_path):
    cfg = load_config(tiny_config(tmp_path, **{"Global.epochs": 1, "Global.eval_during_train": False,
                                               "Optimizer.lr": {"name": "ReduceOnPlateau", "learning_rate": 0.05}}))
    with pytest.raises(ConfigError, match="monitors 'eval_loss', but this run never evaluates"):
        train(cfg)


def test_pretrained_model_with_another_classifier_is_loaded_with_a_notice(tmp_path):
    train(load_config(tiny_config(tmp_path / "a", **{"Global.epochs": 1})))
    weights = out_dir(tmp_path / "a") / "latest.pdparams"
    cfg = load_config(tiny_config(tmp_path / "b", **{"Global.epochs": 1, "Global.class_num": 12,
                                                    "Global.pretrained_model": str(weights)}))
    train(cfg)
    log = (out_dir(tmp_path / "b") / "train.log").read_text()
    assert "kept a new 12-class classifier (fc.weight, fc.bias had another size)" in log


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = load_config(tiny_config(tmp_path, **{"Global.epochs": 2, "Optimizer.lr": {
        "name": "Piecewise", "decay_epochs": [1], "values": [0.05, 1e30]}}))
    with pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf) at step \d+"):
        train(cfg)
    meta = paddle.load(str(out_dir(tmp_path) / "latest.pdckpt"))["meta"]
    assert meta["epoch"] == 1
    assert all(np.isfinite(v).all() for v in read_state_dict(str(out_dir(tmp_path) / "latest.pdparams")).values())


def test_checkpoint_of_another_model_is_refused(tmp_path):
    train(load_config(tiny_config(tmp_path / "a", **{"Global.epochs": 1})))
    cfg = load_config(tiny_config(tmp_path / "b", **{"Arch.name": "shufflenet_v1_g3_x0_25",
                                                    "Global.checkpoints": str(out_dir(tmp_path / "a") / "latest")}))
    with pytest.raises(WeightsError, match="was written for model 'mobilenet_v1_x0_25', but the config builds "
                                           "'shufflenet_v1_g3_x0_25'"):
        train(cfg)


def test_atomic_save_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = str(tmp_path / "w.pdparams")
    atomic_save({"a": paddle.ones([2])}, path)

    def broken_save(obj, target):
        with open(target, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(paddle, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"a": paddle.zeros([2])}, path)
    monkeypatch.undo()
    assert paddle.load(path)["a"].numpy().tolist() == [1.0, 1.0]
    assert os.listdir(tmp_path) == ["w.pdparams"]


def test_a_signal_during_a_save_waits_until_both_files_are_written(tmp_path, monkeypatch):
    import ppzoo.engine.checkpoint as ckpt

    model = paddle.nn.Linear(2, 2)
    prefix = str(tmp_path / "latest")
    seen = []  # which files existed when the signal was handled
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append(sorted(os.listdir(tmp_path))))
    real_save = paddle.save

    def save_then_signal(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        if ckpt.CKPT_SUFFIX in path:  # between the two files
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(paddle, "save", save_then_signal)
    try:
        ckpt.save_checkpoint(prefix, model, meta={"epoch": 1})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [["latest.pdckpt", "latest.pdparams"]]


def test_ctrl_c_and_kill_leave_a_loadable_checkpoint(tmp_path):
    """The timeouts only catch a hang: a loaded machine (2 shared cores) can take a minute
    to finish the step, the save a signal waits for, and Paddle's exit; the asserts are
    about what is left, not how fast."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        run_dir = tmp_path / sig.name
        cfg = tiny_config(run_dir, **{"Global.epochs": 50, "Global.cpu_threads": 1})
        proc = subprocess.Popen([sys.executable, "tools/train.py", "-c", cfg], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            latest = out_dir(run_dir) / "latest.pdckpt"
            deadline = time.time() + 300
            while not latest.exists() and time.time() < deadline and proc.poll() is None:
                time.sleep(0.2)
            assert latest.exists() and proc.poll() is None, "no epoch finished in 300 s"
            time.sleep(0.5)
            sent = time.time()
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, f"{err} (exit {proc.returncode} after {time.time() - sent:.0f} s)"
        assert err.strip().splitlines()[-1] == "interrupted"
        state = paddle.load(str(latest))
        saved = state["meta"]["epoch"]
        assert saved >= 1
        out = out_dir(run_dir)
        assert not [f for f in os.listdir(out) if ".tmp" in f]
        # the epoch's other files are from the same epoch, and the log says how to go on
        assert json.loads((out / "metrics.json").read_text())["epochs"] == saved
        assert (out / "best_model.pdparams").is_file()
        log = (out / "train.log").read_text().strip().splitlines()
        assert f"epoch {saved} is saved complete" in log[-1] and f"Global.checkpoints={out / 'latest'}" in log[-1]


@pytest.mark.parametrize("case,args,message", [
    ("missing config", ["-c", "nope.yaml"], "error: config file not found: nope.yaml"),
    ("unknown key", ["-o", "Global.epoch=1"], "unknown key 'Global.epoch'; did you mean epochs?"),
    ("wrong type", ["-o", "Global.epochs=many"], "'Global.epochs' must be int, got 'many'"),
    ("unknown model", ["-o", "Arch.name=mobilenet_v3"], "unknown model 'mobilenet_v3'"),
    ("empty data path", ["-o", "DataLoader.Train.dataset={name: ImageFolderDataset, root: EMPTY}"],
     "has no class sub-folders"),
    ("label out of range", ["-o", "Global.class_num=5"], "is outside [0, 5)"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, case, args, message):
    cfg = tiny_config(tmp_path)
    (tmp_path / "EMPTY").mkdir()
    args = [a.replace("EMPTY", str(tmp_path / "EMPTY")) for a in args]
    full = args if args[0] == "-c" else ["-c", cfg, *args]
    result = run_tool("tools/train.py", *full)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_corrupt_image_stops_with_its_name_or_is_skipped(tmp_path):
    root = make_image_tree(tmp_path / "data", classes=2, per_class=6, size=16, corrupt=("c1/3.jpg",))
    dataset = {"name": "ImageNetDataset", "image_root": str(root), "cls_label_path": str(root / "list.txt"),
               "transform_ops": [{"DecodeImage": None}, NORMALIZE]}
    cfg = tiny_config(tmp_path, **{"Global.class_num": 2, "Global.epochs": 1, "Global.eval_during_train": False,
                                   "DataLoader.Train.dataset": dataset, "DataLoader.Train.sampler.batch_size": 4})
    result = run_tool("tools/train.py", "-c", cfg)
    assert result.returncode == 2
    assert "c1/3.jpg" in result.stderr and "cannot decode image" in result.stderr
    result = run_tool("tools/train.py", "-c", cfg, "-o", "DataLoader.Train.dataset.skip_bad_images=true")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 unreadable images" in result.stdout


def test_eval_tool_prints_and_writes_json(tmp_path):
    train(load_config(tiny_config(tmp_path, **{"Global.epochs": 1})))
    weights = out_dir(tmp_path) / "latest"
    result = run_tool("tools/eval.py", "-c", tiny_config(tmp_path), "-o", f"Global.pretrained_model={weights}",
                      "--json", tmp_path / "e.json")
    assert result.returncode == 0, result.stderr
    assert "mobilenet_v1_x0_25 on 359 images: top1" in result.stdout
    figures = json.loads((tmp_path / "e.json").read_text())
    assert {"top1", "top5", "loss", "images"} <= set(figures) and figures["images"] == 359
    result = run_tool("tools/eval.py", "-c", tiny_config(tmp_path))
    assert result.returncode == 2 and "set -o Global.pretrained_model=PATH" in result.stderr
