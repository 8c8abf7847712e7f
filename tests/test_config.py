"""Config loading: _base_ merge, overrides, defaults and every kind of bad input."""
import textwrap

import paddle
import pytest
import yaml

import ppzoo
from ppzoo.config import ConfigError, dump_config, load_config, parse_override
from ppzoo.data import build_batch_transforms, build_transforms
from ppzoo.engine.builders import build_loss, build_lr_scheduler, build_optimizer

from conftest import ROOT

MINIMAL = """
Arch:
  name: mobilenet_v1_x0_25
  class_num: 10
Optimizer:
  name: Momentum
  momentum: 0.9
  lr:
    name: Cosine
    learning_rate: 0.1
DataLoader:
  Train:
    dataset:
      name: DigitsDataset
      transform_ops:
        - NormalizeImage:
            scale: 1.0/255.0
    sampler:
      batch_size: 8
"""


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults_are_filled(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg["Global"]["epochs"] == 10 and cfg["Global"]["device"] == "auto"
    assert cfg["DataLoader"]["Train"]["sampler"] == {"batch_size": 8, "name": "DistributedBatchSampler",
                                                     "drop_last": False, "shuffle": False}
    assert cfg["Loss"]["Train"] == [{"CELoss": {"weight": 1.0}}]
    assert cfg["Optimizer"]["no_weight_decay"] == [] and cfg["Optimizer"]["clip_norm"] is None


def test_base_inheritance_deep_merges(tmp_path):
    write(tmp_path, "Global: {epochs: 3, seed: 7}\nArch: {name: mobilenet_v1_x0_25}\n", "base1.yaml")
    write(tmp_path, "Global: {epochs: 4}\n", "base2.yaml")
    path = write(tmp_path, "_base_: [base1.yaml, base2.yaml]\nGlobal: {print_batch_step: 2}\n")
    g = load_config(path)["Global"]
    assert (g["epochs"], g["seed"], g["print_batch_step"]) == (4, 7, 2)


def test_base_cycle_and_missing_base(tmp_path):
    write(tmp_path, "_base_: b.yaml\nArch: {name: alexnet}\n", "a.yaml")
    write(tmp_path, "_base_: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="_base_ cycle"):
        load_config(str(tmp_path / "a.yaml"))
    with pytest.raises(ConfigError, match="_base_ file not found: nope.yaml"):
        load_config(write(tmp_path, "_base_: [nope.yaml]\n"))


def test_overrides_parse_yaml_and_keep_equals_signs(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), [
        "Global.epochs=3", "Optimizer.lr.learning_rate=1e-3", "Global.image_shape=[3, 16, 16]",
        "Global.output_dir=out/a=b", "Global.checkpoints=", "DataLoader.Train.dataset.transform_ops.0.NormalizeImage.order=hwc",
    ])
    assert cfg["Global"]["epochs"] == 3 and cfg["Optimizer"]["lr"]["learning_rate"] == 1e-3
    assert cfg["Global"]["image_shape"] == [3, 16, 16] and cfg["Global"]["output_dir"] == "out/a=b"
    assert cfg["Global"]["checkpoints"] is None
    assert cfg["DataLoader"]["Train"]["dataset"]["transform_ops"][0]["NormalizeImage"]["order"] == "hwc"


def test_override_value_is_never_evaluated(tmp_path):
    # PaddleClas would eval() this; we keep it a string, so it is a type error for an int key
    with pytest.raises(ConfigError, match=r"-o Global.epochs=__import__\('os'\).*must be int"):
        load_config(write(tmp_path, MINIMAL), ["Global.epochs=__import__('os').getpid()"])
    assert parse_override("A.b=1/3") == (["A", "b"], "1/3")
    assert parse_override("A.b=x=y") == (["A", "b"], "x=y")


@pytest.mark.parametrize("override,message", [
    ("Global.epoch=3", r"-o Global.epoch=3: unknown key 'Global.epoch'; did you mean epochs\?"),
    ("Globl.epochs=3", r"unknown section 'Globl'; did you mean Global\?"),
    ("Global.epochs=three", r"'Global.epochs' must be int, got 'three'"),
    ("Global.use_visualdl=1", r"'Global.use_visualdl' must be bool, got 1"),
    ("Optimizer.momentun=0.8", r"unknown key 'Optimizer.momentun'; did you mean momentum\?"),
    ("Optimizer.lr.warmup_epochs=1", r"unknown key 'Optimizer.lr.warmup_epochs'; did you mean warmup_epoch"),
    ("Optimizer.name=Momentun", r"unknown optimizer 'Momentun' at 'Optimizer'; did you mean Momentum\?"),
    ("Optimizer.lr.name=Cosin", r"unknown LR schedule 'Cosin' at 'Optimizer.lr'; did you mean Cosine"),
    ("Arch.name=mobilenet_v1_x9", r"Arch.name: unknown model 'mobilenet_v1_x9'; closest: mobilenet_v1_x1_0, .*mobilenet_v1_x0_25"),
    ("Arch.widht=2", r"unknown key 'Arch.widht'"),
    ("Arch.width=0.5", r"'Arch.width' is fixed by the model name \(width=0.25\)"),
    ("Arch.small_input=yes please", r"'Arch.small_input' must be bool"),
    ("DataLoader.Train.dataset.name=Digits", r"unknown dataset 'Digits'.*did you mean DigitsDataset\?"),
    ("DataLoader.Train.dataset.transform_ops=[{RandCrop: {size: 3}}]",
     r"unknown transform 'RandCrop' at 'DataLoader.Train.dataset.transform_ops.0'; did you mean .*RandCropImage"),
    ("DataLoader.Train.dataset.transform_ops.0.NormalizeImage.scal=2",
     r"unknown key 'DataLoader.Train.dataset.transform_ops.0.NormalizeImage.scal'; did you mean scale\?"),
    ("DataLoader.Train.dataset.transform_ops.3.X=1", r"indexes a list of 1 items; use 0..0"),
    ("DataLoader.Train.sampler.batch_size=0", r"batch_size' must be >= 1"),
    ("Loss.Train=[{CELos: {}}]", r"unknown loss 'CELos'.*did you mean CELoss\b"),
    ("Optimizer.no_weight_decay=[bn]", r"entries must be among norm, depthwise, bias"),
    ("Global.device=tpu", r"'Global.device' must be auto, cpu, gpu or gpu:N"),
    ("AMP.level=O3", r"'AMP.level' must be O1 or O2"),
    ("Global.epochs", r"override 'Global.epochs' must look like Key.sub=value"),
])
def test_bad_overrides_name_key_and_valid_values(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, MINIMAL), [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = write(tmp_path, "Global:\n  epochs: 3\n   seed: 1\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3:\d+: YAML syntax error"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'Global.epoch'; did you mean epochs"):
        load_config(write(tmp_path, MINIMAL + "Global:\n  epoch: 3\n"))
    with pytest.raises(ConfigError, match="section 'Arch' is missing"):
        load_config(write(tmp_path, "Global: {epochs: 1}\n"))
    with pytest.raises(ConfigError, match="Arch.pretrained: ppzoo never downloads"):
        load_config(write(tmp_path, "Arch: {name: alexnet, pretrained: true}\n"))


def test_paddleclas_names_and_class_num_locations(tmp_path):
    cfg = load_config(write(tmp_path, "Global: {class_num: 7}\nArch: {name: MobileNetV2}\n"))
    assert cfg["Arch"]["class_num"] == 7
    cfg = load_config(write(tmp_path, "Arch: {name: MobileNetV1_x0_5, class_num: 3}\n"))
    assert cfg["Arch"]["class_num"] == 3


def test_print_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert yaml.safe_load(dump_config(cfg)) == cfg


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT) for p in (ROOT / "configs").rglob("*.yaml")
                                        if "_base_" not in p.parts))
def test_every_shipped_config_loads_and_builds(path):
    """Everything but the data: model name, losses, optimizer + schedule, transforms."""
    cfg = load_config(str(ROOT / path))
    if cfg["Arch"]["name"] == "DistillationModel":  # teacher + student; tests/test_distill.py runs its losses
        model = ppzoo.registry.build_from_arch(cfg["Arch"], for_inference=True)
    else:
        assert ppzoo.registry.resolve_name(cfg["Arch"]["name"]) in ppzoo.list_models()
        model = ppzoo.registry.build_from_arch(cfg["Arch"])
        build_loss(cfg["Loss"]["Train"])(paddle.rand([2, cfg["Arch"]["class_num"]]), paddle.to_tensor([0, 1]))
    assert model.num_classes == cfg["Arch"]["class_num"]
    model = paddle.nn.Linear(2, 2)
    build_optimizer(cfg["Optimizer"], model, build_lr_scheduler(cfg["Optimizer"]["lr"], cfg["Global"]["epochs"], 10))
    for section in cfg["DataLoader"].values():
        assert build_transforms(section["dataset"]["transform_ops"]).ops
        build_batch_transforms(section)
    assert build_transforms(cfg["Infer"]["transforms"]).ops


def test_entry_forms_are_made_canonical(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + """
Loss:
  Train:
    - name: CELoss
      epsilon: 0.1
    - CELoss
Metric:
  Train:
    - TopkAcc:
        topk: [5, 1]
"""))
    assert cfg["Loss"]["Train"] == [{"CELoss": {"epsilon": 0.1}}, {"CELoss": {}}]
    assert build_loss(cfg["Loss"]["Train"])(paddle.rand([2, 10]), paddle.to_tensor([1, 2])).shape == []
    assert cfg["DataLoader"]["Train"]["dataset"]["transform_ops"] == [{"NormalizeImage": {"scale": "1.0/255.0"}}]


@pytest.mark.parametrize("extra,message", [
    ("Metric:\n  Train:\n    - TopkAcc:\n        topk: [5]\n", r"'Metric.Train.0.TopkAcc': topk must include 1"),
    ("Metric:\n  Train:\n    - TopkAcc:\n        topk: []\n", r"topk must be a list of positive ints"),
    ("Loss: [CELoss]\n", r"'Loss' must be a mapping, got list"),
    ("Infer: [x]\n", r"'Infer' must be a mapping"),
    ("Global:\n  1: 2\n", r"'Global' has a key that is not a name: 1"),
    ("Loss:\n  Train:\n    - name: [CELoss]\n", r"a loss name must be a string"),
    ("Loss:\n  Train:\n    - CELoss:\n        epsilon: 1.5\n", r"'Loss.Train.0.CELoss': CELoss.epsilon must be in \[0, 1\)"),
    ("Global:\n  class_num: 12\n", r"given twice and differently: Arch.class_num=10, Global.class_num=12"),
])
def test_more_bad_values(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, MINIMAL + extra))


def test_optimizer_checks_happen_before_the_run(tmp_path):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match=r"'Optimizer.lr': step_size must be >= 1 epoch"):
        load_config(path, ["Optimizer.lr={name: Step, learning_rate: 0.1, step_size: 0}"])
    with pytest.raises(ConfigError, match="cannot be used with AdamW"):
        load_config(path, ["Optimizer={name: AdamW, regularizer: {name: L2, coeff: 0.1}}"])
    with pytest.raises(ConfigError, match=r"'Optimizer.lr': Piecewise needs len\(values\) == len\(decay_epochs\) \+ 1"):
        load_config(path, ["Optimizer.lr={name: Piecewise, decay_epochs: [1, 2], values: [0.1, 0.01]}"])


def test_class_num_null_falls_back_to_global_and_overrides_complete_a_file(tmp_path):
    cfg = load_config(write(tmp_path, "Global: {class_num: 10}\nArch: {name: alexnet, class_num: null}\n"))
    assert cfg["Arch"]["class_num"] == 10
    incomplete = write(tmp_path, "Global: {epochs: 2}\n", "incomplete.yaml")
    assert load_config(incomplete, ["Arch.name=mobilenet_v1_x0_25"])["Arch"]["name"] == "mobilenet_v1_x0_25"


def test_paddleclas_amp_block_is_accepted(tmp_path):
    amp = """
    AMP:
      use_amp: False
      use_fp16_test: False
      scale_loss: 128.0
      use_dynamic_loss_scaling: True
      use_promote: False
      level: O1
    """
    cfg = load_config(write(tmp_path, MINIMAL + textwrap.dedent(amp)))
    assert cfg["AMP"]["use_amp"] is False and cfg["AMP"]["use_promote"] is False and cfg["AMP"]["scale_loss"] == 128.0
    cfg = load_config(write(tmp_path, MINIMAL), ["AMP.level=O2"])
    assert cfg["AMP"]["use_amp"] is True and cfg["AMP"]["use_promote"] is True  # defaults
