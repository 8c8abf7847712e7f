"""Reliability and safety (issue 9): no hangs on bad data, no code run from weight files,
nothing lost on interruption, one run per output folder, every bad input named."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest
import yaml
from PIL import Image

from ppzoo.config import ConfigError, load_config
from ppzoo.data import build_dataloader

from conftest import NORMALIZE, ROOT, make_image_tree, out_dir, run_tool, tiny_config


def _image_dataset(root, ops, **extra):
    return {"name": "ImageNetDataset", "image_root": str(root), "cls_label_path": str(root / "list.txt"),
            "transform_ops": ops, **extra}


def _with_a_tiny_image(root):
    """The tree of make_image_tree with c1/1.jpg replaced by a 1x1 image."""
    Image.fromarray(np.zeros((1, 1, 3), dtype="uint8")).save(root / "c1" / "1.jpg")
    return root


# ---------------------------------------------------------------------------- data loading never hangs

CROPS = [("RandomCrop", {"size": 8}), ("CropImage", {"size": 8})]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("tool", ["train", "eval"])
def test_a_transform_error_ends_the_run_naming_file_and_transform(tmp_path, workers, tool):
    """Before: with num_workers 0 the loader thread died and train.py/eval.py waited forever
    (deaf to SIGINT/SIGTERM); with 2 workers, exit 1 with a traceback naming no file."""
    root = _with_a_tiny_image(make_image_tree(tmp_path / "data", classes=2, per_class=4, size=12))
    name, params = CROPS[0] if tool == "train" else CROPS[1]
    dataset = _image_dataset(root, [{"DecodeImage": None}, {name: params}, NORMALIZE])
    section = {"dataset": dataset, "sampler": {"batch_size": 4}, "loader": {"num_workers": workers}}
    cfg = tiny_config(tmp_path, **{"Global.class_num": 2, "Global.epochs": 1, "Global.eval_during_train": False,
                                   "DataLoader.Train": section, "DataLoader.Eval": section})
    extra = ["-o", f"Global.pretrained_model={_weights(tmp_path)}"] if tool == "eval" else []
    result = run_tool(f"tools/{tool}.py", "-c", cfg, *extra, timeout=150)  # the hang: TimeoutExpired
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "c1/1.jpg" in lines[0] and f"transform {name} failed" in lines[0], lines[0]
    assert "1x1" in lines[0] or "empty range" in lines[0], lines[0]


def _weights(tmp_path):
    """Random mobilenet_v1_x0_25 weights with 2 classes, for eval.py."""
    import ppzoo

    path = tmp_path / "w.pdparams"
    if not path.exists():
        paddle.save(ppzoo.create_model("mobilenet_v1_x0_25", num_classes=2).state_dict(), str(path))
    return path


def test_a_transform_error_is_skipped_and_counted_with_skip_bad_images(tmp_path):
    root = _with_a_tiny_image(make_image_tree(tmp_path / "data", classes=2, per_class=4, size=12))
    section = {"dataset": _image_dataset(root, [{"DecodeImage": None}, {"RandomCrop": {"size": 8}}, NORMALIZE],
                                         skip_bad_images=True),
               "sampler": {"batch_size": 3, "shuffle": False, "drop_last": False}, "loader": {"num_workers": 0}}
    cfg = load_config(tiny_config(tmp_path, **{"Global.class_num": 2, "DataLoader.Train": section}))
    batches = list(build_dataloader(cfg["DataLoader"]["Train"], True, 2))
    assert sum(b[2] for b in batches) == 1 and sum(b[0].shape[0] for b in batches if b[0] is not None) == 7


def test_images_of_different_sizes_in_a_batch_name_two_files(tmp_path):
    root = make_image_tree(tmp_path / "data", classes=2, per_class=2, size=12)
    Image.fromarray(np.zeros((10, 10, 3), dtype="uint8")).save(root / "c0" / "1.jpg")
    section = {"dataset": _image_dataset(root, [{"DecodeImage": None}, NORMALIZE]),
               "sampler": {"batch_size": 4, "shuffle": False}, "loader": {"num_workers": 0}}
    cfg = load_config(tiny_config(tmp_path, **{"Global.class_num": 2, "DataLoader.Train": section}))
    with pytest.raises(ValueError, match=r"differ in shape: .*c0/0.jpg .* is 3x12x12 but .*c0/1.jpg .* is 3x10x10"):
        list(build_dataloader(cfg["DataLoader"]["Train"], True, 2))


def test_an_epoch_of_only_bad_images_stops_the_run(tmp_path):
    """Before: 0 images trained, a checkpoint written and 'Done' printed."""
    root = make_image_tree(tmp_path / "data", classes=2, per_class=2, size=12,
                           corrupt=("c0/0.jpg", "c0/1.jpg", "c1/0.jpg", "c1/1.jpg"))
    dataset = _image_dataset(root, [{"DecodeImage": None}, NORMALIZE], skip_bad_images=True)
    cfg = tiny_config(tmp_path, **{"Global.class_num": 2, "Global.epochs": 1, "Global.eval_during_train": False,
                                   "DataLoader.Train.dataset": dataset, "DataLoader.Train.sampler.batch_size": 2})
    result = run_tool("tools/train.py", "-c", cfg, timeout=150)
    assert result.returncode == 2, result.stderr
    assert "all 4 images of this pass over ImageNetDataset were unreadable and skipped (first: " in result.stderr
    assert "c0/0.jpg" in result.stderr and "cannot decode image" in result.stderr
    assert not (out_dir(tmp_path) / "latest.pdckpt").exists()


def test_corrupt_image_message_names_the_path_not_a_buffer(tmp_path):
    from ppzoo.data.datasets import ImageNetDataset
    from ppzoo.data.transforms import BadImageError

    root = make_image_tree(tmp_path, corrupt=("c1/2.jpg",))
    ds = ImageNetDataset(str(root), str(root / "list.txt"), [{"DecodeImage": None}])
    with pytest.raises(BadImageError) as info:
        ds.check_image(6)
    assert "c1/2.jpg" in str(info.value) and "BytesIO" not in str(info.value)


def test_a_label_file_that_is_not_utf8_names_file_and_line(tmp_path):
    from ppzoo.data.datasets import ImageNetDataset

    root = make_image_tree(tmp_path)
    with open(root / "list.txt", "ab") as f:
        f.write("c0/0.jpg 0\nc0/caf\u00e9.jpg 1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"list.txt:14: not UTF-8 text \(byte 0xe9 at column 7\)"):
        ImageNetDataset(str(root), str(root / "list.txt"))


# ---------------------------------------------------------------------------- weight files never run code

class _Payload:
    """Unpickling this runs ``open(marker, 'w')`` via ``builtins.exec``: what a hostile
    .pdparams does (with os.system in the wild)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def _malicious(path, marker, checkpoint=False):
    """A real state dict (or checkpoint) with the payload hidden among its tensors."""
    import ppzoo

    state = {k: v.numpy() for k, v in ppzoo.create_model("mobilenet_v1_x0_25").state_dict().items()}
    state["fc.bias_extra"] = _Payload(marker)
    obj = {"model": state, "meta": {"epoch": 1, "arch": "mobilenet_v1_x0_25"}} if checkpoint else state
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


def test_a_pickle_that_runs_code_is_refused_and_the_payload_never_runs(tmp_path):
    import ppzoo
    from ppzoo.engine.checkpoint import load_checkpoint
    from ppzoo.utils.weights import UnsafeWeightsError, read_state_dict

    marker = tmp_path / "PWNED"
    weights = _malicious(tmp_path / "evil.pdparams", marker)
    with pytest.raises(UnsafeWeightsError, match=r"refusing to load .*evil.pdparams: it would import builtins.exec"):
        read_state_dict(str(weights))
    with pytest.raises(UnsafeWeightsError):
        ppzoo.create_model("mobilenet_v1_x0_25", pretrained=str(weights))
    ckpt = _malicious(tmp_path / "evil.pdckpt", marker, checkpoint=True)
    with pytest.raises(UnsafeWeightsError):
        load_checkpoint(str(ckpt), ppzoo.create_model("mobilenet_v1_x0_25"))
    assert not marker.exists()
    # the control: plain pickle.load of the same file does run it (so the test can fail)
    with open(weights, "rb") as f:
        pickle.load(f)
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("tool", ["train_pretrained", "train_resume", "eval", "convert"])
def test_tools_refuse_a_malicious_weight_file(tmp_path, tool):
    marker = tmp_path / "PWNED"
    weights = _malicious(tmp_path / "evil.pdparams", marker)
    cfg = tiny_config(tmp_path, **{"Global.epochs": 1})
    args = {
        "train_pretrained": ["tools/train.py", "-c", cfg, "-o", f"Global.pretrained_model={weights}"],
        "train_resume": ["tools/train.py", "-c", cfg, "-o",
                         f"Global.checkpoints={_malicious(tmp_path / 'evil.pdckpt', marker, True)}"],
        "eval": ["tools/eval.py", "-c", cfg, "-o", f"Global.pretrained_model={weights}"],
        "convert": ["tools/convert_weights.py", "--model", "mobilenet_v1_x1_0", "--src", weights,
                    "--dst", tmp_path / "out.pdparams"],
    }[tool]
    result = run_tool(*args, timeout=150)
    assert result.returncode == 2, result.stderr
    assert "refusing to load" in result.stderr and "builtins.exec" in result.stderr
    assert not marker.exists()


def test_real_checkpoints_and_paddleclas_style_pickles_still_load(tmp_path):
    """The allow-list covers what paddle.save writes: tensors, optimizer state with its LR
    schedule, RNG states (Python, numpy, Paddle), numpy scalars and protocol-2 pickles."""
    from ppzoo.engine.checkpoint import load_checkpoint, save_checkpoint
    from ppzoo.utils.weights import safe_load

    model = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4))
    opt = paddle.optimizer.Momentum(paddle.optimizer.lr.CosineAnnealingDecay(0.1, 10), parameters=model.parameters())
    model(paddle.rand([1, 3, 8, 8])).sum().backward()
    opt.step()
    save_checkpoint(str(tmp_path / "latest"), model, opt, meta={"epoch": 1, "best": {"top1": np.float64(1.5)}})
    meta = load_checkpoint(str(tmp_path / "latest"), model, opt)
    assert meta["epoch"] == 1 and meta["best"]["top1"] == 1.5
    reference = paddle.load(str(tmp_path / "latest.pdckpt"))
    ours = safe_load(str(tmp_path / "latest.pdckpt"))
    for key, value in reference["model"].items():
        np.testing.assert_array_equal(ours["model"][key].numpy(), value.numpy())
    paddle.save({k: v for k, v in model.state_dict().items()}, str(tmp_path / "p2.pdparams"), protocol=2)
    assert set(safe_load(str(tmp_path / "p2.pdparams"), return_numpy=True)) == set(model.state_dict())


def test_safetensors_round_trip_everywhere_weights_are_read(tmp_path):
    import ppzoo
    from ppzoo.utils.weights import read_state_dict, save_weights

    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10)
    path = save_weights(model, str(tmp_path / "m.safetensors"), metadata={"arch": "mobilenet_v1_x0_25"})
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        assert f.metadata() == {"arch": "mobilenet_v1_x0_25"}
    state = read_state_dict(str(tmp_path / "m"))  # the prefix finds the .safetensors file
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key], value.numpy())
    again = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, pretrained=path)
    np.testing.assert_array_equal(again.state_dict()["fc.weight"].numpy(), model.state_dict()["fc.weight"].numpy())
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    from ppzoo.utils.weights import WeightsError

    with pytest.raises(WeightsError, match="cannot read weight file .*bad.safetensors"):
        read_state_dict(str(tmp_path / "bad.safetensors"))


def test_export_writes_safetensors_that_rebuild_the_model(tmp_path):
    import ppzoo
    from ppzoo.utils.weights import save_weights

    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10)
    weights = save_weights(model, str(tmp_path / "w.pdparams"))
    cfg = tiny_config(tmp_path, **{"Global.image_shape": [3, 16, 16]})
    result = run_tool("tools/export.py", "-c", cfg, "-o", f"Global.pretrained_model={weights}", "-o",
                      f"Global.save_inference_dir={tmp_path / 'inf'}", "--safetensors", timeout=200)
    assert result.returncode == 0, result.stderr
    assert "model.safetensors" in result.stdout
    from safetensors import safe_open

    with safe_open(str(tmp_path / "inf" / "model.safetensors"), framework="numpy") as f:
        meta = f.metadata()
    assert json.loads(meta["arch"])["name"] == "mobilenet_v1_x0_25" and meta["source"] == weights
    again = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, pretrained=str(tmp_path / "inf" / "model"))
    x = paddle.rand([2, 3, 16, 16])
    model.eval(), again.eval()
    np.testing.assert_array_equal(model(x).numpy(), again(x).numpy())


# ---------------------------------------------------------------------------- nothing lost on interruption

def _log(tmp_path):
    return (out_dir(tmp_path) / "train.log").read_text()


def test_ctrl_c_during_the_latest_save_still_writes_best_model_and_metrics(tmp_path, monkeypatch):
    """Before: the save of latest completed, then the interrupt skipped best_model.pdparams
    and metrics.json of the same epoch, and a resumed run never wrote best_model."""
    from ppzoo.engine import evaluate_config, train

    real_save = paddle.save

    def save_then_ctrl_c(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        if os.path.basename(path).startswith("latest.pdckpt"):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(paddle, "save", save_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(tiny_config(tmp_path, **{"Global.epochs": 3})))
    monkeypatch.undo()
    out = out_dir(tmp_path)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    assert (out / "best_model.pdparams").is_file() and (out / "epoch_1.pdckpt").is_file()
    assert f"interrupted during epoch 1; epoch 1 is saved complete" in _log(tmp_path)
    assert not [f for f in os.listdir(out) if ".tmp" in f or f.startswith(".ppzoo-commit")]
    # the resumed run's closing line names weights that exist, and its eval command works
    summary = train(load_config(tiny_config(tmp_path, **{"Global.epochs": 2,
                                                         "Global.checkpoints": str(out / "latest")})))
    closing = _log(tmp_path).strip().splitlines()[-1]
    weights = closing.split("Global.pretrained_model=")[1].strip()
    assert weights == str(out / "best_model") and os.path.isfile(weights + ".pdparams"), closing
    result = evaluate_config(load_config(tiny_config(tmp_path), [f"Global.pretrained_model={weights}"]))
    assert result["top1"] == pytest.approx(summary["best"]["top1"])  # best_model is the best epoch's, 1 or 2


def test_resumed_elsewhere_without_a_new_best_names_the_latest_weights(tmp_path):
    from ppzoo.engine import train

    train(load_config(tiny_config(tmp_path / "a", **{"Global.epochs": 1})))
    first = out_dir(tmp_path / "a")
    # a learning rate of 0 cannot beat epoch 1, so this folder gets no best_model
    cfg = tiny_config(tmp_path / "b", **{"Global.epochs": 2, "Global.checkpoints": str(first / "latest"),
                                         "Optimizer.lr": {"name": "Constant", "learning_rate": 0.0}})
    summary = train(load_config(cfg))
    assert summary["best"]["epoch"] == 1 and not (out_dir(tmp_path / "b") / "best_model.pdparams").exists()
    closing = _log(tmp_path / "b").strip().splitlines()[-1]
    assert f"Weights: {out_dir(tmp_path / 'b') / 'latest'}.pdparams" in closing
    assert "best_model.pdparams of the run resumed from" in closing


KILL_DURING_SAVE = r"""
import json, os, signal, sys
import ppzoo.utils.fileio as fio
from ppzoo.config import load_config
from ppzoo.engine import train

stage = sys.argv[2]
real_write, real_commit = fio._write_temp, fio._commit

def write_then_die(path, write):  # epoch 2: the first temporary file, then kill -9 (no journal yet)
    tmp = real_write(path, write)
    if "epoch_1.pdckpt" in os.listdir(os.path.dirname(path)) and os.path.basename(path) == "latest.pdckpt":
        os.kill(os.getpid(), signal.SIGKILL)
    return tmp

def commit_then_die(directory):  # epoch 2: journal written, one rename done, then kill -9
    journal = json.load(open(os.path.join(directory, fio.JOURNAL)))
    if any(name == "epoch_2.pdckpt" for _, name in journal["renames"]):
        tmp, name = journal["renames"][0]
        os.replace(os.path.join(directory, tmp), os.path.join(directory, name))
        os.kill(os.getpid(), signal.SIGKILL)
    return real_commit(directory)

if stage == "before_journal":
    fio._write_temp = write_then_die
else:
    fio._commit = commit_then_die
train(load_config(sys.argv[1]))
"""


@pytest.mark.parametrize("stage", ["before_journal", "after_journal"])
def test_kill_9_during_the_epoch_save_leaves_all_old_or_all_new_files(tmp_path, stage):
    """Before: latest.pdckpt could hold epoch 2 and latest.pdparams epoch 1, and *.tmp*
    files stayed forever."""
    from ppzoo.utils.weights import read_state_dict, safe_load

    cfg = tiny_config(tmp_path, **{"Global.epochs": 3, "Global.eval_during_train": False,
                                   "DataLoader.Train.dataset.val_fraction": 0.95})  # 90 images, no eval: fast
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, cfg, stage], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    out = out_dir(tmp_path)
    assert [f for f in os.listdir(out) if ".tmp" in f]  # the killed writer's leftovers
    resumed = run_tool("tools/train.py", "-c", cfg, "-o", f"Global.checkpoints={out / 'latest'}", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    log = _log(tmp_path)
    assert "took over the lock of" in log and "is no longer running" in log
    expected = 1 if stage == "before_journal" else 2  # the epoch whose files are complete
    if stage == "after_journal":
        assert "completed the save that a killed run had committed: " in log
    assert "removed temporary files of a killed run" in log or stage == "after_journal"
    assert f"at the end of epoch {expected}" in log
    assert not [f for f in os.listdir(out) if ".tmp" in f or f.startswith(".ppzoo-commit")]
    # the pair written last is consistent: same weights in latest.pdckpt and latest.pdparams
    ckpt = safe_load(str(out / "latest.pdckpt"), return_numpy=True)
    params = read_state_dict(str(out / "latest.pdparams"))
    assert ckpt["meta"]["epoch"] == 3
    for key, value in params.items():
        np.testing.assert_array_equal(ckpt["model"][key], value, err_msg=key)


def test_a_full_disk_names_the_file_and_keeps_the_last_epoch(tmp_path, monkeypatch):
    import errno

    from ppzoo.engine import train

    real_save, calls = paddle.save, {"n": 0}

    def save_until_full(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:  # epoch 1: latest, epoch_1 (2 files each) and best_model
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(paddle, "save", save_until_full)
    with pytest.raises(OSError, match=r"cannot write .*latest.pdckpt: No space left on device"):
        train(load_config(tiny_config(tmp_path, **{"Global.epochs": 2})))
    monkeypatch.undo()
    out = out_dir(tmp_path)
    assert "error: [Errno 28] cannot write" in _log(tmp_path)
    assert paddle.load(str(out / "latest.pdckpt"))["meta"]["epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    assert not [f for f in os.listdir(out) if ".tmp" in f]


# ---------------------------------------------------------------------------- one run per folder, signals

def _wait_for(path, proc, seconds=240):
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert path.exists(), proc.communicate(timeout=60)


def test_a_second_run_into_the_same_folder_is_refused_naming_the_holder(tmp_path):
    cfg = tiny_config(tmp_path, **{"Global.epochs": 50})
    first = subprocess.Popen([sys.executable, "tools/train.py", "-c", cfg], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(out_dir(tmp_path) / "train.log", first)
        second = run_tool("tools/train.py", "-c", cfg, timeout=200)
        assert second.returncode == 2, second.stderr
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: {out_dir(tmp_path)} is in use by another training (pid {first.pid} on ")
        assert "choose another Global.output_dir" in line
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=300)
    assert first.returncode == 130
    log = _log(tmp_path)
    assert log.count("mobilenet_v1_x0_25: ") == 1  # only the first run wrote to train.log
    assert not (out_dir(tmp_path) / ".ppzoo.lock.json").exists()  # released on the way out


def test_sigterm_in_the_first_second_is_an_interruption(tmp_path):
    """Before: exit -15 with no message (the handler came only with the training session)."""
    proc = subprocess.Popen([sys.executable, "tools/train.py", "-c", tiny_config(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"


def test_the_error_that_ends_a_run_is_in_train_log(tmp_path):
    root = make_image_tree(tmp_path / "data", classes=2, per_class=2, size=12, corrupt=("c1/1.jpg",))
    dataset = _image_dataset(root, [{"DecodeImage": None}, NORMALIZE])
    cfg = tiny_config(tmp_path, **{"Global.class_num": 2, "Global.epochs": 1, "Global.eval_during_train": False,
                                   "DataLoader.Train.dataset": dataset, "DataLoader.Train.sampler.batch_size": 2})
    result = run_tool("tools/train.py", "-c", cfg, timeout=200)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert _log(tmp_path).strip().splitlines()[-1].endswith(error)


# ---------------------------------------------------------------------------- every bad input named

@pytest.mark.parametrize("tool,args,message", [
    ("infer", ["--benchmark", "--repeat", "0"], "--repeat must be >= 1, got 0"),
    ("infer", ["-i", "x.jpg", "--topk", "-2"], "--topk must be >= 1, got -2"),
    ("infer", ["-i", "x.jpg", "--topk", "0"], "--topk must be >= 1, got 0"),
    ("infer", ["--benchmark", "--threads", "-1"], "--threads must be >= 1, got -1"),
    ("infer", ["--benchmark", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    ("analyze", ["--latency", "--repeat", "0"], "--repeat must be >= 1, got 0"),
    ("analyze", ["--latency", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    ("analyze", ["--input-size", "0"], "--input-size must be >= 1, got 0"),
    ("analyze", ["--latency", "--warmup", "-1"], "--warmup must be >= 0, got -1"),
])
def test_bad_tool_options_are_one_named_line(tool, args, message):
    base = ["--model-dir", "nowhere"] if tool == "infer" else ["mobilenet_v1_x0_25"]
    result = run_tool(f"tools/{tool}.py", *base, *args, timeout=150)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {message}"], result.stderr


def test_library_calls_check_the_same_limits():
    from ppzoo.analysis import analyze
    from ppzoo.utils.timing import time_fn

    with pytest.raises(ValueError, match="repeat >= 1"):
        time_fn(lambda: None, repeat=0)
    with pytest.raises(ValueError, match="input_size must be >= 1, got 0"):
        analyze(["mobilenet_v1_x0_25"], input_size=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        analyze(["mobilenet_v1_x0_25"], latency=True, batch_size=0)


@pytest.mark.parametrize("override,message", [
    ("Global.seed=-1", r"'Global.seed' must be >= 0, got -1"),
    ("Global.cpu_threads=-2", r"'Global.cpu_threads' must be >= 0, got -2"),
    ("DataLoader.Train.loader.num_workers=-1", r"'DataLoader.Train.loader.num_workers' must be >= 0"),
    ("Optimizer.lr.learning_rate=-0.1", r"learning_rate must be >= 0, got -0.1"),
    ("Optimizer.lr.warmup_epoch=-1", r"warmup_epoch must be >= 0, got -1"),
    ("Optimizer.lr={name: Cosine, learning_rate: 0.1, warmup_epoch: 1, warmup_start_lr: 0.5}",
     r"warmup_start_lr must be in \[0, learning_rate=0.1\]"),
    ("Infer.PostProcess.topk=-1", r"'Infer.PostProcess.topk' must be >= 1, got -1"),
])
def test_bad_values_are_refused_before_the_run_naming_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tiny_config(tmp_path), [override])
    assert str(info.value).startswith(f"-o {override}")


def test_bad_values_end_train_py_with_one_line_and_exit_2(tmp_path):
    """Before: Global.seed=-1 was a TypeError from manual_seed, num_workers=-1 an
    AssertionError: exit 1 'unexpected ...'."""
    cfg = tiny_config(tmp_path)
    for override in ("Global.seed=-1", "DataLoader.Train.loader.num_workers=-1"):
        result = run_tool("tools/train.py", "-c", cfg, "-o", override, timeout=150)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: -o {override}: "), result.stderr


def test_infer_label_list_that_is_not_utf8_names_file_and_line(tmp_path):
    from ppzoo.deploy.predictor import collect_images

    (tmp_path / "list.txt").write_bytes("a.jpg 0\nb\xe9.jpg 1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"list.txt:2: not UTF-8 text \(byte 0xe9 at column 2\)"):
        collect_images(str(tmp_path / "list.txt"))
