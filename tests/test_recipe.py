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
    assert stages == ["baseline", "distill", "prune", "lowrank", "quant", "export"]
    base, distill, pruned, _, int8, exported = report["stages"]
    # Slim.distill: the uncompressed model teaches the later fine-tunes (its log says so)
    assert distill["info"]["teacher"] == LEARNS["Arch.name"] and distill["madds"] == base["madds"]
    logs = list(tmp_path.glob("out/**/compress/2_prune/finetune/**/train.log"))
    assert logs and "distillation:" in logs[0].read_text()
    assert exported["file_bytes"] < 0.6 * pruned["file_bytes"]  # float16 weights
    assert yaml.safe_load((tmp_path / "deploy" / "inference.yml").read_text())["weights_dtype"] == "float16"
    assert pruned["madds"] < base["madds"] and pruned["params"] < base["params"]
    assert int8["precision"] == "int8" and int8["file_bytes"] < pruned["file_bytes"]
    for e in report["stages"]:
        assert e["latency_ms"]["batch1"] > 0 and e["latency_ms"]["batch8"] > 0 and 0 <= e["top1"] <= 100
    assert pruned["top1"] >= base["top1"] - 10  # one fine-tune epoch recovers most of the pruning loss
    assert int8["top1"] >= pruned["top1"] - 5  # int8 keeps the accuracy of the model it quantized
    checks = yaml.safe_load((tmp_path.joinpath(int8["inference_dir"]) / "inference.yml").read_text())["checks"]
    assert checks["top1_agreement"] >= 90, checks  # against its float32 input, on calibration images
    # the int8 model deploys: tools/infer.py runs it on the ten sample digits (docs/images/digits/list.txt has
    # their labels) and gets most of them right
    digits = ROOT / "docs" / "images" / "digits"
    result = run_tool("tools/infer.py", "--model-dir", int8["inference_dir"], "-i", digits / "list.txt", "--json")
    assert result.returncode == 0, result.stderr
    assert "quantized" not in result.stderr  # oneDNN's pass log is kept out of the tool's output
    predicted = [p["topk"][0]["class_id"] for p in json.loads(result.stdout)["predictions"]]
    labels = [int(line.split()[1]) for line in (digits / "list.txt").read_text().split("\n") if line.strip()]
    assert len(predicted) == 10 and sum(p == t for p, t in zip(predicted, labels)) >= 7, predicted
