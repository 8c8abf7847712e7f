"""tools/compress.py's machinery: stages run in order on a trained model, each writes its
folder and model (.arch.json), the report measures every entry, a rerun resumes."""
import json

import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.compress import StageResult, add_pass, base, register_pass, register_stage
from ppzoo.config import load_config
from ppzoo.engine import train
from ppzoo.engine.recipe import compress

from conftest import out_dir, run_tool, tiny_config

CALLS = []


def _factorise_fc(model):
    """Replace the classifier W (in x out) by two exact factors (full-rank SVD)."""
    fc = model.fc
    w, b = fc.weight.numpy(), fc.bias.numpy()
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    r = len(s)
    first, second = paddle.nn.Linear(w.shape[0], r, bias_attr=False), paddle.nn.Linear(r, w.shape[1])
    first.weight.set_value((u * s).astype("float32"))
    second.weight.set_value(vt.astype("float32"))
    second.bias.set_value(b)
    model.fc = paddle.nn.Sequential(first, second)
    return r


def _rebuild(model, record):
    in_f, out_f = model.fc.weight.shape
    model.fc = paddle.nn.Sequential(paddle.nn.Linear(in_f, record["rank"], bias_attr=False),
                                    paddle.nn.Linear(record["rank"], out_f))
    return model


def _run(model, ctx):
    CALLS.append(ctx.key)
    rank = _factorise_fc(model)
    add_pass(model, "test_fc_svd", {"rank": rank}, arch=ctx.arch)
    model = ctx.fine_tune(model, ctx.params.get("epochs", 0))
    return StageResult(model, info={"rank": rank})


@pytest.fixture(scope="module", autouse=True)
def _test_stage():
    register_pass("test_fc_svd", _rebuild)
    register_stage("test_fc_svd", lambda value, resolved: dict(value or {}), order=33, run=_run)
    yield
    base._STAGES.pop("test_fc_svd")
    base._PASSES.pop("test_fc_svd")


def test_stages_run_measure_and_resume(tmp_path):
    path = tiny_config(tmp_path, **{"Global.epochs": 1, "Global.image_shape": [3, 16, 16]})
    train(load_config(path))
    weights = str(out_dir(tmp_path) / "best_model.pdparams")
    cfg = load_config(path, [f"Global.pretrained_model={weights}", "Slim={test_fc_svd: {epochs: 1}}"])
    CALLS.clear()
    report = compress(cfg, repeat=3)
    assert CALLS == ["test_fc_svd"]
    base_entry, stage = report["stages"]
    assert (base_entry["stage"], stage["stage"]) == ("baseline", "test_fc_svd")
    for entry in report["stages"]:
        assert entry["params"] > 0 and entry["madds"] > 0 and entry["mac"] > 0 and entry["file_bytes"] > 0
        assert 0 <= entry["top1"] <= 100 and entry["latency_ms"]["batch1"] > 0 and entry["latency_ms"]["batch8"] > 0
    fc_in, fc_out = 256, 10  # mobilenet_v1_x0_25: 256 features, 10 classes; rank 10
    assert stage["params"] - base_entry["params"] == fc_in * 10 + 10 * fc_out - fc_in * fc_out
    assert stage["info"] == {"rank": 10}
    folder = out_dir(tmp_path) / "compress" / "1_test_fc_svd"
    on_disk = json.loads((out_dir(tmp_path) / "compress" / "report.json").read_text())
    assert [e["stage"] for e in on_disk["stages"]] == ["baseline", "test_fc_svd"]
    assert (out_dir(tmp_path) / "compress" / "report.md").read_text().count("| test_fc_svd |") == 1
    # the saved model rebuilds from its architecture file and gives the stage's outputs
    rebuilt = ppzoo.create_model(str(folder / "model.arch.json"), pretrained=str(folder / "model.pdparams"))
    rebuilt.eval()
    x = paddle.randn([2, 3, 16, 16])
    assert isinstance(rebuilt.fc, paddle.nn.Sequential)
    from ppzoo.deploy.predictor import Predictor
    np.testing.assert_allclose(Predictor(stage["inference_dir"]).run(x.numpy()), rebuilt(x).numpy(), atol=1e-4)
    # a rerun finds the stage done and does not run it again
    CALLS.clear()
    again = compress(cfg, repeat=3)
    assert CALLS == [] and again["stages"][1]["top1"] == stage["top1"]


def test_compress_tool_bad_inputs(tmp_path):
    path = tiny_config(tmp_path)
    result = run_tool("tools/compress.py", "-c", path)
    assert result.returncode == 2 and "nothing to compress: the config has no Slim section" in result.stderr
    result = run_tool("tools/compress.py", "-c", path, "-o", "Slim={test_fc_svd: {}}")
    assert result.returncode == 2 and "unknown key 'Slim.test_fc_svd'" in result.stderr  # not registered there
    cfg = load_config(path, ["Slim={test_fc_svd: {}}"])
    with pytest.raises(ValueError, match="set -o Global.pretrained_model=PATH"):
        compress(cfg)


@pytest.mark.parametrize("distill, message", [
    ({"teacher": "self", "teacher_weights": "x.pdparams"}, "'Slim.distill.teacher_weights' is for a named teacher"),
    ({"teacher": "mobilenet_v1_x0_25"}, "a frozen model (a teacher) needs trained weights"),
    ({"loss": "dml"}, "'Slim.distill.loss' must be one of kd, dkd, ce, feature"),
    ({"epochs": -1}, "'Slim.distill.epochs' must be >= 0"),
    ({"temprature": 2.0}, "temperature"),
])
def test_slim_distill_bad_input(tmp_path, distill, message):
    from ppzoo.config import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(tiny_config(tmp_path), [f"Slim={{distill: {json.dumps(distill)}, prune: {{pruned_ratio: 0.3}}}}"])


def test_slim_distill_must_come_first(tmp_path):
    from ppzoo.config import ConfigError

    with pytest.raises(ConfigError, match="valid order: distill -> "):
        load_config(tiny_config(tmp_path), ["Slim={prune: {pruned_ratio: 0.3}, distill: {}}"])


def test_latency_size_times_a_cheaply_calibrated_int8_program(tmp_path):
    """--latency-size: each stage is also exported at that size for timing; the int8 one is
    calibrated on 16 resized images with abs_max (its speed does not depend on the scales),
    while the program that is measured for accuracy keeps the recipe's calibration."""
    path = tiny_config(tmp_path, **{"Global.epochs": 1, "Global.image_shape": [3, 16, 16]})
    train(load_config(path))
    weights = str(out_dir(tmp_path) / "best_model.pdparams")
    cfg = load_config(path, [f"Global.pretrained_model={weights}",
                             "Slim={quant: {name: ptq, algo: hist, calib_batches: 3, batch_size: 8}}"])
    report = compress(cfg, latency_size=24, repeat=1)
    assert report["latency_input"] == [3, 24, 24]
    int8 = report["stages"][1]
    from ppzoo.deploy.export import read_metadata

    timed, measured = read_metadata(int8["latency_dir"]), read_metadata(int8["inference_dir"])
    assert timed["input"]["shape"][-1] == 24 and measured["input"]["shape"][-1] == 16
    assert (timed["quantization"]["algo"], timed["quantization"]["calib_images"]) == ("abs_max", 16)
    assert (measured["quantization"]["algo"], measured["quantization"]["calib_images"]) == ("hist", 24)
