"""The digits recipe (configs/compress/digits.yaml) end to end on a tiny budget: every stage
runs, the report is measured, and the int8 model runs in tools/infer.py."""
import json

import yaml

from ppzoo.config import load_config
from ppzoo.engine import train
from ppzoo.engine.recipe import compress

from conftest import LEARNS, NORMALIZE, ROOT, out_dir, run_tool, tiny_config


def test_digits_recipe_runs_every_stage_and_deploys_int8(tmp_path):
    # 32x32 digits, the size of the sample images tools/infer.py reads below
    path = tiny_config(tmp_path, **LEARNS, **{"Global.epochs": 2, "Global.image_shape": [3, 32, 32],
                                    "DataLoader.Train.dataset.image_size": 32, "DataLoader.Eval.dataset.image_size": 32,
                                    "DataLoader.Train.dataset.transform_ops": [{"RandomCrop": {"size": 32, "padding": 2}},
                                                                               NORMALIZE]})
    train(load_config(path))
    recipe = yaml.safe_load((ROOT / "configs" / "compress" / "digits.yaml").read_text())["Slim"]
    recipe["lowrank"]["fine_tune_epochs"] = 0  # the tiny budget: one fine-tune epoch, after pruning
    recipe["quant"]["calib_batches"] = 2
    recipe["export"] = {"precision": "fp32", "weights_dtype": "float16"}  # the deployed form of the chain's end
    cfg = load_config(path, [f"Global.pretrained_model={out_dir(tmp_path, LEARNS['Arch.name']) / 'best_model'}",
                             f"Global.save_inference_dir={tmp_path / 'deploy'}",
                             f"Slim={json.dumps(recipe)}"])
    report = compress(cfg, repeat=3)
    stages = [e["stage"] for e in report["stages"]]
    assert stages == ["baseline", "prune", "lowrank", "quant", "export"]
    base, pruned, _, int8, exported = report["stages"]
    assert exported["file_bytes"] < 0.6 * pruned["file_bytes"]  # float16 weights
    assert yaml.safe_load((tmp_path / "deploy" / "inference.yml").read_text())["weights_dtype"] == "float16"
    assert pruned["madds"] < base["madds"] and pruned["params"] < base["params"]
    assert int8["precision"] == "int8" and int8["file_bytes"] < pruned["file_bytes"]
    for e in report["stages"]:
        assert e["latency_ms"]["batch1"] > 0 and e["latency_ms"]["batch8"] > 0 and 0 <= e["top1"] <= 100
    assert pruned["top1"] >= base["top1"] - 10  # one fine-tune epoch recovers most of the pruning loss
    # the int8 model deploys: tools/infer.py runs it on images. (Its accuracy is not asserted: oneDNN's int8
    # kernels lose most of it on this pruned ShuffleNet, see docs/compression.md "Quantization".)
    digits = ROOT / "docs" / "images" / "digits"
    result = run_tool("tools/infer.py", "--model-dir", int8["inference_dir"], "-i", digits / "list.txt", "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    assert len(predictions) == 10 and all(0 <= p["topk"][0]["class_id"] < 10 for p in predictions)
    assert "quantized" not in result.stderr  # oneDNN's pass log is kept out of the tool's output
