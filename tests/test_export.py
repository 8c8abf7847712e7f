"""Export with paddle.jit, run with paddle.inference (and ONNX Runtime), and their errors."""
import json
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

import ppzoo
from ppzoo.data import BadImageError
from ppzoo.deploy.export import ExportError, export_model, read_metadata
from ppzoo.deploy.predictor import Predictor

from conftest import ROOT, one_per_family, randomise_weights, run_tool

# one variant per family; AlexNet's groups and LRN, ShuffleNet's channel shuffle included
BY_FAMILY = one_per_family()
FAMILIES = sorted(BY_FAMILY.values())
SHUFFLENET, MOBILENET_V1 = BY_FAMILY["shufflenet_v1"], BY_FAMILY["mobilenet_v1"]
SHAPE = [3, 64, 64]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each family exported once (random weights), with its model for reference."""
    out = {}
    for name in FAMILIES:
        paddle.seed(1)
        model = randomise_weights(ppzoo.create_model(name, num_classes=7), seed=1)
        model.train()
        folder = tmp_path_factory.mktemp(name)
        export_model(model, str(folder), SHAPE, name=name, class_names=[f"class{i}" for i in range(7)], topk=3)
        assert model.training  # export leaves the caller's mode alone
        model.eval()  # BN statistics, AlexNet's dropout
        out[name] = (model, str(folder))
    return out


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("onednn", [True, False])
def test_predictor_equals_dygraph(exported, name, onednn):
    model, folder = exported[name]
    batch = np.random.default_rng(2).standard_normal([3, *SHAPE]).astype("float32")
    with paddle.no_grad():
        reference = model(paddle.to_tensor(batch)).numpy()
    assert np.abs(reference).max() > 0.1  # random weights: a real signal to compare
    assert np.abs(Predictor(folder, onednn=onednn).run(batch) - reference).max() <= 1e-4


def test_folder_layout_and_metadata(exported):
    model, folder = exported[SHUFFLENET]
    meta = read_metadata(folder)
    assert meta["model"] == SHUFFLENET and meta["input"]["shape"] == [None, *SHAPE]
    assert meta["output"] == {"num_classes": 7, "softmax": False}
    assert meta["class_names"][:2] == ["class0", "class1"] and meta["PostProcess"]["topk"] == 3
    ops = [next(iter(op)) for op in meta["PreProcess"]["transform_ops"]]
    assert ops == ["DecodeImage", "ResizeImage", "CropImage", "NormalizeImage"]
    assert meta["checks"]["paddle_inference_max_abs_diff"] <= 1e-4
    image = str(ROOT / "docs" / "images" / "digits" / "digit_3.png")
    predictor = Predictor(folder)
    predictions = predictor.predict([image])
    logits = predictor.run(predictor.preprocess([image]))[0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    order = np.argsort(-probs)[:3]
    assert [p["class_id"] for p in predictions[0]] == order.tolist()
    assert [p["label"] for p in predictions[0]] == [f"class{i}" for i in order]
    np.testing.assert_allclose([p["score"] for p in predictions[0]], probs[order], rtol=1e-5)


def test_onnx_export_matches(tmp_path):
    pytest.importorskip("paddle2onnx", reason="onnx extra not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnx extra not installed")
    cases = [("shufflenet_v1_g8_x0_25", SHAPE), ("alexnet", [3, 227, 227]),  # shuffle; groups + LRN
             ("mobilenet_v1_x0_25", SHAPE), ("mobilenet_v2_x0_35", SHAPE)]
    for name, shape in cases:
        model = randomise_weights(ppzoo.create_model(name, num_classes=5))
        meta = export_model(model, str(tmp_path / name), shape, onnx=True)
        assert meta["checks"]["onnxruntime_max_abs_diff"] <= 1e-4
        session = ort.InferenceSession(str(tmp_path / name / "model.onnx"), providers=["CPUExecutionProvider"])
        batch = np.random.default_rng(3).standard_normal([4, *shape]).astype("float32")  # dynamic batch
        with paddle.no_grad():
            reference = model(paddle.to_tensor(batch)).numpy()
        assert np.abs(reference).max() > 0.1, name
        assert np.abs(session.run(None, {session.get_inputs()[0].name: batch})[0] - reference).max() <= 1e-4, name
    with pytest.raises(ExportError, match="ONNX Runtime cannot run the converted model: .*AlexNet below 227x227"):
        export_model(ppzoo.create_model("alexnet"), str(tmp_path / "small"), SHAPE, onnx=True)


def test_softmax_head_and_fixed_batch(tmp_path):
    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=4)
    export_model(model, str(tmp_path), SHAPE, add_softmax=True, batch_size=2)
    predictor = Predictor(str(tmp_path))
    out = predictor.run(np.zeros([1, *SHAPE], dtype="float32"))  # a short batch is padded
    assert out.shape == (1, 4) and abs(out.sum() - 1.0) < 1e-5
    with pytest.raises(ValueError, match=r"exported with a fixed batch of 2; got 3 images"):
        predictor.run(np.zeros([3, *SHAPE], dtype="float32"))


def test_a_disagreeing_or_nan_export_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=4)
    for bad in (np.nan, 1.0):
        monkeypatch.setattr("ppzoo.deploy.export._predictor_output", lambda folder, batch: np.full([len(batch), 4], bad))
        with pytest.raises(ExportError, match="the exported program disagrees with the model: max abs diff"):
            export_model(model, str(tmp_path), SHAPE)
    assert list(tmp_path.iterdir()) == []


def test_wrong_input_shapes_are_clear_errors(exported, tmp_path):
    _, folder = exported[MOBILENET_V1]
    predictor = Predictor(folder)
    with pytest.raises(ValueError, match=r"takes input \[N, 3, 64, 64\], got \[1, 1, 64, 64\]"):
        predictor.run(np.zeros([1, 1, 64, 64], dtype="float32"))
    with pytest.raises(ValueError, match=r"takes input \[N, 3, 64, 64\], got \[2, 3, 32, 32\]"):
        predictor.run(np.zeros([2, 3, 32, 32], dtype="float32"))
    with pytest.raises(ExportError, match=r"cannot take input \[3, 32, 32\]: AlexNet: a 32x32 input leaves an empty"):
        export_model(ppzoo.create_model("alexnet"), str(tmp_path / "a"), [3, 32, 32])
    with pytest.raises(ExportError, match=r"cannot take input \[1, 64, 64\]: .*expects input of shape \[N, 3, H, W\]"):
        export_model(ppzoo.create_model("mobilenet_v1_x0_25"), str(tmp_path / "b"), [1, 64, 64])


def test_missing_incomplete_folders_and_bad_images(exported, tmp_path):
    with pytest.raises(ExportError, match="model folder not found: .*nowhere"):
        Predictor(str(tmp_path / "nowhere"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "inference.json").write_text("{}")
    with pytest.raises(ExportError, match="half is incomplete: missing inference.pdiparams, inference.yml"):
        Predictor(str(tmp_path / "half"))
    _, good = exported[MOBILENET_V1]
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("inference.pdiparams", "inference.yml"):
        (broken / f).write_bytes((Path(good) / f).read_bytes())
    (broken / "inference.json").write_text('{"not": "a program"}')
    with pytest.raises(ExportError, match="paddle.inference cannot load .*broken.*export it again"):
        Predictor(str(broken))
    (broken / "inference.yml").write_text("model: x\ninput: {}\n")
    with pytest.raises(ExportError, match="inference.yml is not ppzoo export metadata"):
        Predictor(str(broken))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    _, folder = exported[MOBILENET_V1]
    with pytest.raises(BadImageError, match=r"bad.jpg: cannot decode image"):
        Predictor(folder).predict([str(bad)])


def test_export_infer_tools_end_to_end(tmp_path):
    cfg = str(ROOT / "configs" / "shufflenet.yaml")
    out = tmp_path / "inference"
    result = run_tool("tools/export.py", "-c", cfg, "-o", f"Global.save_inference_dir={out}")
    assert result.returncode == 2 and "no weights to export" in result.stderr and "--random-weights" in result.stderr
    result = run_tool("tools/export.py", "-c", cfg, "-o", f"Global.save_inference_dir={out}", "--random-weights")
    assert result.returncode == 0, result.stderr
    assert "next: python tools/infer.py" in result.stdout
    digits = ROOT / "docs" / "images" / "digits"
    result = run_tool("tools/infer.py", "--model-dir", out, "-i", digits / "list.txt", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["predictions"]) == 10 and len(report["predictions"][0]["topk"]) == 3
    assert set(report["accuracy"]) == {"images", "top1", "top3"}
    result = run_tool("tools/infer.py", "--model-dir", out, "-i", digits)
    assert result.returncode == 0 and result.stdout.count("digit_") == 10
    result = run_tool("tools/infer.py", "--model-dir", out, "--benchmark", "--batch-size", "4", "--repeat", "5",
                      "--warmup", "2", "--json")
    bench = json.loads(result.stdout)
    assert bench["batch_size"] == 4 and bench["p90_ms"] >= bench["p50_ms"] > 0 and bench["runs"] == 5
    (tmp_path / "bad.png").write_bytes(b"garbage")
    result = run_tool("tools/infer.py", "--model-dir", out, "-i", tmp_path / "bad.png")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "bad.png: cannot decode image" in result.stderr
    result = run_tool("tools/infer.py", "--model-dir", tmp_path / "none", "-i", digits)
    assert result.returncode == 2 and "model folder not found" in result.stderr
    result = run_tool("tools/infer.py", "--model-dir", out, "-i", digits, "--batch-size", "0")
    assert result.returncode == 2 and "batch_size must be >= 1" in result.stderr
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01")
    result = run_tool("tools/infer.py", "--model-dir", out, "-i", tmp_path / "weights.bin")
    assert result.returncode == 2 and "expected an image" in result.stderr
    meta = yaml.safe_load((out / "inference.yml").read_text())
    assert meta["input"]["shape"] == [None, 3, 32, 32]
