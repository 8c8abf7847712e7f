"""The seams: one-way layers (import-linter), the step function and hook protocol through
the public API, config sections and Slim stages added without editing ppzoo.config."""
import shutil
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml

import ppzoo
from ppzoo.config import ConfigError, load_config, register_section
from ppzoo.engine import Hook, StepOutput, train
from ppzoo.engine.loop import train_one_epoch

from conftest import ROOT, out_dir, tiny_config


def _lint(root, env_path):
    exe = shutil.which("lint-imports") or "lint-imports"
    return subprocess.run([exe, "--config", str(root / "setup.cfg")], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(env_path), "PATH": str(ROOT), "HOME": str(root)}, timeout=120)


def test_layers_import_only_downward():
    result = _lint(ROOT, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract is not vacuous: the cycle the layout removed (deploy importing the
    analysis timer) fails it again."""
    shutil.copytree(ROOT / "ppzoo", tmp_path / "ppzoo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    target = tmp_path / "ppzoo" / "deploy" / "predictor.py"
    target.write_text(target.read_text() + "\nfrom ..analysis import time_fn  # noqa\n")
    result = _lint(tmp_path, tmp_path)
    assert result.returncode != 0
    assert "ppzoo.deploy.predictor -> ppzoo.analysis" in result.stdout.replace("\n", " ") or "BROKEN" in result.stdout


class Recorder(Hook):
    """Records every call, and keeps a counter as checkpointed state."""

    def __init__(self):
        self.calls, self.count = [], 0

    def prepare(self, model):
        self.calls.append("prepare")
        return model

    def before_epoch(self, model, epoch):
        self.calls.append(f"before_epoch:{epoch}")

    def after_backward(self, model):
        grads = [p.grad for p in model.parameters() if not p.stop_gradient]
        assert any(g is not None for g in grads)  # called after backward, before the step clears them
        self.calls.append("after_backward")

    def after_step(self, model, step):
        self.count += step
        self.calls.append(f"after_step:{step}")

    def before_eval(self, model):
        self.calls.append("before_eval")

    def after_epoch(self, model, epoch, record):
        self.calls.append(f"after_epoch:{epoch}:{'eval' in record}")

    def state_dict(self):
        return {"count": self.count}

    def set_state_dict(self, state):
        self.count = state["count"]

    def finalize(self, model):
        self.calls.append("finalize")
        return model


class HalfLossStep:
    """A custom step: cross-entropy times 0.5, plus an extra reported per epoch."""

    def __call__(self, model, images, targets):
        logits = model(images)
        ce = paddle.nn.functional.cross_entropy(logits, targets.reshape([-1]).astype("int64"))
        return StepOutput(0.5 * ce, logits, {"ce": ce})


def test_custom_step_and_hook_through_the_public_api(tmp_path):
    cfg = load_config(tiny_config(tmp_path, **{"Global.epochs": 2}))
    hook = Recorder()
    metrics = train(cfg, step_fn=HalfLossStep(), hooks=[hook])
    steps = metrics["history"][0]["train"]["steps"]
    expected = ["prepare"]
    for epoch in (1, 2):
        expected.append(f"before_epoch:{epoch}")
        for i in range((epoch - 1) * steps + 1, epoch * steps + 1):
            expected += ["after_backward", f"after_step:{i}"]  # steps are numbered over the whole run
        expected += ["before_eval", f"after_epoch:{epoch}:True"]
    assert hook.calls == expected + ["finalize"]
    assert hook.count == sum(range(1, 2 * steps + 1))
    train_stats = metrics["history"][0]["train"]
    assert abs(train_stats["loss"] - 0.5 * train_stats["ce"]) < 1e-4  # the custom step's loss was the one used
    assert (out_dir(tmp_path) / "final_model.pdparams").exists()  # a finalizing hook's model is saved


def test_resume_with_a_stateful_hook_is_exact(tmp_path):
    full = tmp_path / "full"
    full_hook = Recorder()
    train(load_config(tiny_config(full, **{"Global.epochs": 2})), hooks=[full_hook])
    resumed, resumed_hook = tmp_path / "resumed", Recorder()
    cfg = load_config(tiny_config(resumed, **{"Global.epochs": 2,
                                              "Global.checkpoints": str(out_dir(full) / "epoch_1")}))
    train(cfg, hooks=[resumed_hook])
    assert resumed_hook.calls[:2] == ["prepare", "before_epoch:2"]
    assert resumed_hook.count == full_hook.count  # the hook's state came back from the checkpoint
    a = paddle.load(str(out_dir(full) / "latest.pdparams"))
    b = paddle.load(str(out_dir(resumed) / "latest.pdparams"))
    assert max(float(np.abs(a[k].numpy() - b[k].numpy()).max()) for k in a) == 0.0
    # resuming without the hook that wrote state is refused: it could not be exact
    cfg = load_config(tiny_config(resumed, **{"Global.epochs": 2,
                                              "Global.checkpoints": str(out_dir(full) / "epoch_1")}))
    with pytest.raises(ValueError, match="holds the state of Recorder"):
        train(cfg)


def test_train_one_epoch_takes_any_step_and_hooks():
    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=3, small_input=True)
    opt = paddle.optimizer.SGD(0.01, parameters=model.parameters())
    sched = paddle.optimizer.lr.LambdaDecay(0.01, lambda s: 1.0)
    batches = [(paddle.randn([4, 3, 16, 16]), paddle.to_tensor([0, 1, 2, 0]), 0) for _ in range(3)]
    seen = []

    class OnlyAfterStep:  # hooks need not subclass Hook
        def after_step(self, model, step):
            seen.append(step)

    stats = train_one_epoch(model, batches, HalfLossStep(), opt, sched, [OnlyAfterStep()], topk=[1], first_step=7)
    assert seen == [7, 8, 9] and stats["steps"] == 3 and "ce" in stats


def test_a_new_config_section_and_slim_stage_need_no_edit_of_ppzoo_config(tmp_path):
    from ppzoo.compress import register_stage, stage_names
    from ppzoo.config import sections

    def check_probe(value, resolved):
        if not isinstance(value, dict) or value.get("level", 0) < 0:
            raise ConfigError("'Probe.level' must be >= 0", key="Probe.level")
        return {"level": 0, **value}

    register_section("Probe", check_probe, order=95)
    register_stage("probe_stage", lambda value, resolved: dict(value or {}), order=35)
    try:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"Arch": {"name": "mobilenet_v1_x0_25"}, "Probe": {"level": 2},
                                        "Slim": {"probe_stage": {"x": 1}}}))
        cfg = load_config(str(path))
        assert cfg["Probe"] == {"level": 2} and cfg["Slim"] == {"probe_stage": {"x": 1}}
        with pytest.raises(ConfigError, match=r"-o Probe.level=-1: 'Probe.level' must be >= 0"):
            load_config(str(path), ["Probe.level=-1"])
        assert "probe_stage" in stage_names()
    finally:
        sections._SECTIONS.pop("Probe")
        from ppzoo.compress import base
        base._STAGES.pop("probe_stage")


def test_slim_stage_names_and_order_are_checked(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"Arch": {"name": "mobilenet_v1_x0_25"}, "Slim": {"prun": {}}}))
    with pytest.raises(ConfigError, match=r"unknown key 'Slim.prun'"):
        load_config(str(path))


def test_config_error_carries_the_key_path(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tiny_config(tmp_path), ["Optimizer.lr.learning_rate=-0.1"])
    assert info.value.key == "Optimizer.lr" and "learning_rate must be >= 0" in str(info.value)
    assert str(info.value).startswith("-o Optimizer.lr.learning_rate=-0.1: ")


def test_paddleclas_keys_we_ignore_are_announced(tmp_path, capsys):
    path = tiny_config(tmp_path, **{"Infer": {"infer_imgs": "docs/images", "batch_size": 4},
                                    "DataLoader.Train.sampler.name": "BatchSampler",
                                    "DataLoader.Eval.sampler.name": "DistributedBatchSampler"})
    load_config(path)
    err = capsys.readouterr().err
    assert "'Infer.infer_imgs' is accepted for PaddleClas compatibility and ignored" in err
    assert "'Infer.batch_size' is accepted" in err
    assert "'DataLoader.Train.sampler.name' is accepted" in err
    assert "DataLoader.Eval.sampler" not in err  # what ppzoo does anyway: no notice
    load_config(tiny_config(tmp_path / "plain"))
    assert capsys.readouterr().err == ""


def test_duplicate_yaml_keys_are_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Global:\n  epochs: 2\n  epochs: 3\nArch: {name: mobilenet_v1_x0_25}\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3:\d+: YAML error: key 'epochs' is given twice"):
        load_config(str(path))


def test_override_with_a_python_tag_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="YAML tags are not accepted"):
        load_config(tiny_config(tmp_path), ["Global.output_dir=!!python/object/apply:os.system ['true']"])


def test_tools_still_run_with_the_new_layout():
    result = subprocess.run([sys.executable, "tools/train.py", "-c", "configs/shufflenet.yaml", "--print-config"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["Arch"]["name"] == "shufflenet_v1_g3_x1_0"


def test_public_aliases_of_moved_modules_still_work():
    from ppzoo.deploy.export import export_model
    from ppzoo.deploy.predictor import Predictor
    from ppzoo.export import export_model as alias_export
    from ppzoo.inference import Predictor as alias_predictor

    assert alias_export is export_model and alias_predictor is Predictor
