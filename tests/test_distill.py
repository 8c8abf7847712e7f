"""Knowledge distillation: the losses against their closed forms, the frozen teacher,
checkpoints and resume, the tools on a PaddleClas-style config, and the bad inputs."""
import copy
import json

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
import yaml

import ppzoo
from ppzoo.compress.distill import (DistillationCELoss, DistillationDKDLoss, DistillationDMLLoss,
                                    DistillationFeatureLoss, DistillationGTCELoss, DistillationKLDivLoss,
                                    DistillationModel, dkd, dml_kl, kd_kl, soft_ce)
from ppzoo.config import ConfigError, load_config
from ppzoo.engine import train
from ppzoo.utils.weights import read_state_dict

from conftest import run_tool, tiny_config

RNG = np.random.default_rng(0)
S = RNG.standard_normal((4, 5)).astype("float32") * 2
T_ = RNG.standard_normal((4, 5)).astype("float32") * 2
LABELS = np.array([0, 3, 1, 4])


def softmax(x, t=1.0):
    e = np.exp(x / t - (x / t).max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl(p, q):
    """KL(p || q) per row."""
    return (p * (np.log(p) - np.log(q))).sum(-1)


def tensor(x):
    return paddle.to_tensor(x)


# ---------------------------------------------------------------------------- closed forms

@pytest.mark.parametrize("temp", [1.0, 4.0])
def test_kd_is_kl_at_temperature_times_t_squared(temp):
    expected = kl(softmax(T_, temp), softmax(S, temp)).mean() * temp ** 2
    assert float(kd_kl(tensor(S), tensor(T_), temp)) == pytest.approx(expected, rel=1e-5)
    # the T^2 factor: the same KL without it is T^2 smaller
    assert float(kd_kl(tensor(S), tensor(T_), temp)) / temp ** 2 == pytest.approx(
        kl(softmax(T_, temp), softmax(S, temp)).mean(), rel=1e-5)


def test_soft_ce_is_entropy_plus_kl():
    temp = 2.0
    p = softmax(T_, temp)
    expected = -(p * np.log(softmax(S, temp))).sum(-1).mean() * temp ** 2
    assert float(soft_ce(tensor(S), tensor(T_), temp)) == pytest.approx(expected, rel=1e-5)
    entropy = -(p * np.log(p)).sum(-1).mean() * temp ** 2
    assert float(soft_ce(tensor(S), tensor(T_), temp)) == pytest.approx(
        entropy + float(kd_kl(tensor(S), tensor(T_), temp)), rel=1e-5)


def test_dml_is_the_symmetric_kl():
    a, b = softmax(S), softmax(T_)
    assert float(dml_kl(tensor(S), tensor(T_))) == pytest.approx(((kl(a, b) + kl(b, a)) / 2).mean(), rel=1e-5)
    assert float(dml_kl(tensor(T_), tensor(S))) == pytest.approx(float(dml_kl(tensor(S), tensor(T_))), rel=1e-6)


@pytest.mark.parametrize("temp", [1.0, 4.0])
def test_dkd_splits_kd_into_target_and_non_target_parts(temp):
    """Zhao et al. Eq. 5: KD = TCKD + (1 - p_t[target]) * NCKD, and each part's closed form."""
    out = dkd(tensor(S), tensor(T_), tensor(LABELS), temp, alpha=1.0, beta=1.0)
    ps, pt = softmax(S, temp), softmax(T_, temp)
    rows = np.arange(4)
    bs = np.stack([ps[rows, LABELS], 1 - ps[rows, LABELS]], -1)
    bt = np.stack([pt[rows, LABELS], 1 - pt[rows, LABELS]], -1)
    mask = np.ones_like(ps, bool)
    mask[rows, LABELS] = False
    qs = np.where(mask, ps, 0) / (1 - ps[rows, LABELS])[:, None]
    qt = np.where(mask, pt, 0) / (1 - pt[rows, LABELS])[:, None]
    nckd_rows = np.array([kl(qt[i][mask[i]], qs[i][mask[i]]) for i in rows])
    assert float(out["tckd"]) == pytest.approx(kl(bt, bs).mean() * temp ** 2, rel=1e-4)
    assert float(out["nckd"]) == pytest.approx(nckd_rows.mean() * temp ** 2, rel=1e-4)
    kd_rows = kl(pt, ps)
    np.testing.assert_allclose(kd_rows, kl(bt, bs) + (1 - pt[rows, LABELS]) * nckd_rows, rtol=1e-4)
    weighted = dkd(tensor(S), tensor(T_), tensor(LABELS), temp, alpha=0.5, beta=8.0)
    assert float(weighted["loss"]) == pytest.approx(0.5 * float(out["tckd"]) + 8 * float(out["nckd"]), rel=1e-5)


def _outputs(**models):
    return {name: {"logits": tensor(x)} for name, x in models.items()}


def test_config_losses_weigh_and_name_their_terms():
    outs = _outputs(Student=S, Teacher=T_)
    kl_terms = DistillationKLDivLoss(weight=0.5, model_name_pairs=[["Student", "Teacher"]], temperature=4)(outs, None)
    assert list(kl_terms) == ["loss_kl_Student_Teacher"]
    assert float(kl_terms["loss_kl_Student_Teacher"]) == pytest.approx(0.5 * float(kd_kl(tensor(S), tensor(T_), 4)))
    ce = DistillationCELoss(weight=2.0, model_name_pairs=[["Student", "Teacher"]])(outs, None)
    assert float(ce["loss_ce_Student_Teacher"]) == pytest.approx(2 * float(soft_ce(tensor(S), tensor(T_), 1.0)))
    gt = DistillationGTCELoss(weight=1.0, model_names=["Student"])(outs, tensor(LABELS))
    assert float(gt["loss_gt_ce_Student"]) == pytest.approx(
        -np.log(softmax(S)[np.arange(4), LABELS]).mean(), rel=1e-5)
    d = DistillationDKDLoss(weight=1.0, model_name_pairs=[["Student", "Teacher"]], temperature=4, alpha=1, beta=8)
    assert float(d(outs, tensor(LABELS))["loss_dkd_Student_Teacher"]) == pytest.approx(
        float(dkd(tensor(S), tensor(T_), tensor(LABELS), 4.0, 1.0, 8.0)["loss"]), rel=1e-6)
    dml = DistillationDMLLoss(weight=1.0, model_name_pairs=[["Student", "Student1"]])(
        _outputs(Student=S, Student1=T_), None)
    assert float(dml["loss_dml_Student_Student1"]) == pytest.approx(float(dml_kl(tensor(S), tensor(T_))))


def test_dkd_warm_up_scales_the_term_linearly_by_epoch():
    outs, labels = _outputs(Student=S, Teacher=T_), tensor(LABELS)
    full = float(dkd(tensor(S), tensor(T_), labels, 4.0, 1.0, 8.0)["loss"])
    loss = DistillationDKDLoss(model_name_pairs=[["Student", "Teacher"]], temperature=4, beta=8, warmup_epochs=4)
    for epoch, factor in [(1, 0.25), (3, 0.75), (4, 1.0), (9, 1.0)]:
        loss.set_epoch(epoch)
        assert float(loss(outs, labels)["loss_dkd_Student_Teacher"]) == pytest.approx(factor * full, rel=1e-6)
    plain = DistillationDKDLoss(model_name_pairs=[["Student", "Teacher"]], temperature=4, beta=8)
    plain.set_epoch(1)
    assert float(plain(outs, labels)["loss_dkd_Student_Teacher"]) == pytest.approx(full, rel=1e-6)


def test_feature_loss_uses_the_adapted_map_and_pools_to_the_smaller_size():
    fs = RNG.standard_normal((2, 3, 4, 4)).astype("float32")
    ft = RNG.standard_normal((2, 3, 2, 2)).astype("float32")
    loss = DistillationFeatureLoss(weight=1.0, model_name_pairs=[["Student", "Teacher"]])
    outs = {"Student": {"features": tensor(fs)}, "Teacher": {"features": tensor(ft)}}
    pooled = fs.reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5))
    assert float(loss(outs, None)["loss_feature_Student_Teacher"]) == pytest.approx(((pooled - ft) ** 2).mean(),
                                                                                     rel=1e-5)
    outs["Student"]["features_to_Teacher"] = tensor(np.zeros_like(fs))
    assert float(loss(outs, None)["loss_feature_Student_Teacher"]) == pytest.approx((ft ** 2).mean(), rel=1e-5)


# ---------------------------------------------------------------------------- runs on digits

def _teacher_file(tmp_path, name="mobilenet_v1_x0_25", seed=1):
    paddle.seed(seed)
    model = ppzoo.create_model(name, num_classes=10)
    path = tmp_path / f"teacher_{name}.pdparams"
    paddle.save(model.state_dict(), str(path))
    return str(path)


def distill_config(tmp_path, teacher_weights, losses=None, student="mobilenet_v1_x0_25", teacher="mobilenet_v1_x0_25",
                   **overrides):
    """A PaddleClas-style DistillationModel config on the tiny digits setup of conftest."""
    losses = losses or [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},
                        {"DistillationKLDivLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]],
                                                   "temperature": 4}}]
    arch = {"name": "DistillationModel", "class_num": 10, "freeze_params_list": [True, False],
            "infer_model_name": "Student",
            "models": [{"Teacher": {"name": teacher, "pretrained": teacher_weights}},
                       {"Student": {"name": student, "pretrained": False}}]}
    metric = [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}]
    return tiny_config(tmp_path, **{"Arch": arch, "Loss": {"Train": losses, "Eval": [{"CELoss": {"weight": 1.0}}]},
                                    "Metric": {"Train": metric, "Eval": copy.deepcopy(metric)}, **overrides})


def test_teacher_is_frozen_in_eval_mode_without_gradients(tmp_path):
    from ppzoo.engine.trainer import _session, build_run

    weights = _teacher_file(tmp_path)
    cfg = load_config(distill_config(tmp_path, weights), quiet=True)
    with _session(cfg, None) as session:
        run = build_run(cfg, session)
        model = run.model
        assert isinstance(model, DistillationModel)
        teacher = model.model("Teacher")
        before = {k: v.numpy().copy() for k, v in teacher.state_dict().items()}
        student_before = {k: v.numpy().copy() for k, v in model.model("Student").state_dict().items()}
        assert not any(k.startswith("Teacher.") for k in model.state_dict())
        optimized = {id(p) for g in run.optimizer._param_groups for p in (g["params"] if isinstance(g, dict) else [g])}
        assert not optimized & {id(p) for p in teacher.parameters()}
        x, y, _ = next(iter(run.train_loader))
        model.train()
        out = run.step_fn(run.train_model, x, y)
        out.loss.backward()
        run.optimizer.step()
        assert not teacher.training  # train() on the distillation model does not reach the teacher
        assert all(p.grad is None for p in teacher.parameters())
        assert all(p.stop_gradient for p in teacher.parameters())
        for k, v in teacher.state_dict().items():  # running statistics included
            np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
        changed = [k for k, v in model.model("Student").state_dict().items()
                   if not np.array_equal(v.numpy(), student_before[k])]
        assert changed  # while the student did learn
        assert set(out.extras) == {"loss_gt_ce_Student", "loss_kl_Student_Teacher"}


def test_paddleclas_style_config_trains_evaluates_and_exports_the_student(tmp_path):
    weights = _teacher_file(tmp_path)
    cfg = distill_config(tmp_path, weights, **{"Global.epochs": 1})
    result = run_tool("tools/train.py", "-c", cfg)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "out" / "DistillationModel"
    log = (out / "train.log").read_text()
    from ppzoo.utils.params import count_params

    teacher_m = count_params(ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10)) / 1e6
    assert f"Teacher = mobilenet_v1_x0_25 ({teacher_m:.3f} M params, frozen, eval mode, no gradients" in log
    assert "img/s with the teacher's forward" in log and "img/s without it" in log
    metrics = json.loads((out / "metrics.json").read_text())
    train_rec = metrics["history"][0]["train"]
    assert 0 < train_rec["teacher_seconds"] < train_rec["seconds"]
    assert train_rec["images_per_s_without_teacher"] > train_rec["images_per_s"]
    best = read_state_dict(str(out / "best_model.pdparams"))
    assert best and all(k.startswith("Student.") for k in best)  # the student only: no teacher copy
    result = run_tool("tools/eval.py", "-c", cfg, "-o", f"Global.pretrained_model={out / 'best_model'}")
    assert result.returncode == 0, result.stderr[-2000:]
    top1 = float(result.stdout.split("top1")[1].split("%")[0].strip(" :="))
    assert top1 == pytest.approx(metrics["best"]["top1"], abs=0.01)
    inference = tmp_path / "inference"
    result = run_tool("tools/export.py", "-c", cfg, "-o", f"Global.pretrained_model={out / 'best_model'}",
                      "-o", f"Global.save_inference_dir={inference}", "-o", "Global.image_shape=[3,16,16]")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exported mobilenet_v1_x0_25" in result.stdout
    assert (inference / "inference.pdiparams").is_file()


def test_resume_with_a_feature_adapter_ends_with_the_same_weights(tmp_path):
    """Student and teacher of different widths (a 1x1 adapter is trained and checkpointed)."""
    weights = _teacher_file(tmp_path, "mobilenet_v1_x0_5")
    losses = [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},
              {"DistillationFeatureLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}},
              {"DistillationDKDLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]],
                                       "temperature": 4, "beta": 8}}]
    pair = {"teacher": "mobilenet_v1_x0_5", "Global.epochs": 2}
    train(load_config(distill_config(tmp_path / "a", weights, losses, **pair), quiet=True))
    full = tmp_path / "a" / "out" / "DistillationModel"
    cfg_b = distill_config(tmp_path / "b", weights, losses, **pair, **{"Global.checkpoints": str(full / "epoch_1")})
    train(load_config(cfg_b, quiet=True))
    a = read_state_dict(str(full / "latest.pdparams"))
    b = read_state_dict(str(tmp_path / "b" / "out" / "DistillationModel" / "latest.pdparams"))
    assert "adapters.Student__Teacher.weight" in a and a["adapters.Student__Teacher.weight"].shape[:2] == (512, 256)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_dkd_warm_up_reaches_the_training_step(tmp_path):
    """Epoch 1 of a 1000-epoch warm-up trains like a DKD term of weight 1/1000: the trainer's
    hook sets the factor before the epoch's steps."""
    weights = _teacher_file(tmp_path)

    def student(name, **dkd_options):
        losses = [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},
                  {"DistillationDKDLoss": {"model_name_pairs": [["Student", "Teacher"]], "temperature": 4, "beta": 8,
                                           **dkd_options}}]
        cfg = distill_config(tmp_path / name, weights, losses, **{"Global.epochs": 1})
        train(load_config(cfg, quiet=True))
        return read_state_dict(str(tmp_path / name / "out" / "DistillationModel" / "latest.pdparams"))

    warm, light, full = (student("warm", warmup_epochs=1000), student("light", weight=0.001),
                         student("full", weight=1.0))
    for key in warm:
        np.testing.assert_allclose(warm[key], light[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert any(not np.allclose(warm[k], full[k], rtol=1e-3, atol=1e-5) for k in warm)


def test_dml_checkpoints_hold_both_students_and_eval_picks_infer_model_name(tmp_path):
    losses = [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student", "Student1"]}},
              {"DistillationDMLLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Student1"]]}}]
    arch = {"name": "DistillationModel", "class_num": 10, "freeze_params_list": [False, False],
            "infer_model_name": "Student",
            "models": [{"Student": {"name": "mobilenet_v1_x0_25"}}, {"Student1": {"name": "mobilenet_v1_x0_25"}}]}
    metric = [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}]
    cfg = tiny_config(tmp_path, **{"Arch": arch, "Loss": {"Train": losses, "Eval": [{"CELoss": {"weight": 1.0}}]},
                                   "Metric": {"Train": metric, "Eval": metric}, "Global.epochs": 1})
    summary = train(load_config(cfg, quiet=True))
    out = tmp_path / "out" / "DistillationModel"
    state = read_state_dict(str(out / "latest.pdparams"))
    assert {k.split(".")[0] for k in state} == {"Student", "Student1"}
    assert not np.array_equal(state["Student.fc.weight"], state["Student1.fc.weight"])
    from ppzoo.engine import evaluate_config

    first = evaluate_config(load_config(cfg, [f"Global.pretrained_model={out / 'latest'}"], quiet=True))
    assert first["top1"] == pytest.approx(summary["last"]["top1"])
    second = evaluate_config(load_config(cfg, [f"Global.pretrained_model={out / 'latest'}",
                                               "Arch.infer_model_name=Student1"], quiet=True))
    assert second["loss"] != pytest.approx(first["loss"])  # the other student's weights were evaluated


def test_short_form_saves_a_plain_student(tmp_path):
    weights = _teacher_file(tmp_path)
    cfg = tiny_config(tmp_path, **{"Global.epochs": 1, "Distill": {
        "teacher": "mobilenet_v1_x0_25", "teacher_weights": weights, "loss": "kd", "temperature": 2.0}})
    resolved = load_config(cfg, quiet=True)
    assert resolved["Distill"]["teacher"]["pretrained"] == weights
    summary = train(resolved)
    out = tmp_path / "out" / "mobilenet_v1_x0_25"
    assert "loss_kl_Student_Teacher" in summary["history"][0]["train"]
    assert "loss_labels" in summary["history"][0]["train"]
    from ppzoo.utils.weights import load_weights

    student = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10)
    load_weights(student, str(out / "best_model"))  # the plain student takes its Student.* tensors
    state = read_state_dict(str(out / "best_model.pdparams"))
    np.testing.assert_array_equal(student.state_dict()["fc.weight"].numpy(), state["Student.fc.weight"])


# ---------------------------------------------------------------------------- bad input

def _edit(path, fn):
    cfg = yaml.safe_load(open(path))
    fn(cfg)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def _set_pairs(cfg, pairs, index=1):
    cfg["Loss"]["Train"][index]["DistillationKLDivLoss"]["model_name_pairs"] = pairs


BAD = {
    "class counts": (lambda c: c["Arch"]["models"][0]["Teacher"].update(class_num=100),
                     "Arch.models.0.Teacher.class_num", "share one label set"),
    "no teacher weights": (lambda c: c["Arch"]["models"][0]["Teacher"].update(pretrained=False),
                           "Arch.models.0.Teacher.pretrained", "needs trained weights"),
    "download asked": (lambda c: c["Arch"]["models"][0]["Teacher"].update(pretrained=True),
                       "Arch.models.0.Teacher.pretrained", "never does"),
    "unknown pair name": (lambda c: _set_pairs(c, [["Student", "Teachr"]]),
                          "Loss.Train.1.DistillationKLDivLoss.model_name_pairs", "'Teachr', which is not in"),
    "freeze list length": (lambda c: c["Arch"].update(freeze_params_list=[True]),
                           "Arch.freeze_params_list", "has 1 entries but Arch.models has 2"),
    "temperature zero": (lambda c: c["Loss"]["Train"][1]["DistillationKLDivLoss"].update(temperature=0),
                         "Loss.Train.1.DistillationKLDivLoss", "temperature must be > 0"),
    "dkd warm-up": (lambda c: c["Loss"]["Train"].__setitem__(1, {"DistillationDKDLoss": {
        "model_name_pairs": [["Student", "Teacher"]], "warmup_epochs": -2}}),
                    "Loss.Train.1.DistillationDKDLoss", "warmup_epochs must be an int >= 0"),
    "dml single": (lambda c: c["Loss"]["Train"].__setitem__(1, {"DistillationDMLLoss": {
        "weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}}),
                   "Loss.Train.1.DistillationDMLLoss.model_name_pairs", "deep mutual learning trains two models"),
    "eval loss missing": (lambda c: c["Loss"].pop("Eval"), "Loss.Eval", "add Loss.Eval"),
    "infer name": (lambda c: c["Arch"].update(infer_model_name="Teacher"), "Arch.infer_model_name", "frozen model"),
    "metric key": (lambda c: c["Metric"]["Eval"][0]["DistillationTopkAcc"].update(model_key="Pupil"),
                   "Metric.Eval.0.DistillationTopkAcc.model_key", "not in Arch.models"),
    "loss without distillation model": (lambda c: c.update(Arch={"name": "mobilenet_v1_x0_25"}),
                                        "Loss.Train.0", "set Arch.name: DistillationModel"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_the_key(tmp_path, case):
    edit, key, message = BAD[case]
    path = _edit(distill_config(tmp_path, _teacher_file(tmp_path)), edit)
    with pytest.raises(ConfigError) as info:
        load_config(path, quiet=True)
    assert info.value.key == key
    assert message in str(info.value) and "\n" not in str(info.value)


def test_short_form_bad_temperature_and_teacher_classes(tmp_path):
    weights = _teacher_file(tmp_path)
    cfg = tiny_config(tmp_path, **{"Distill": {"teacher": "mobilenet_v1_x0_25", "teacher_weights": weights,
                                               "temperature": -1.0}})
    with pytest.raises(ConfigError, match="Distill.temperature") as info:
        load_config(cfg, quiet=True)
    assert info.value.key == "Distill.temperature"
    cfg = tiny_config(tmp_path, **{"Distill": {"teacher": "mobilenet_v1_x0_25", "teacher_weights": weights,
                                               "loss": "kd", "warmup_epochs": 3}})
    with pytest.raises(ConfigError, match="DKD's warm-up") as info:
        load_config(cfg, quiet=True)
    assert info.value.key == "Distill.warmup_epochs"
    cfg = tiny_config(tmp_path, **{"Distill": {"teacher": {"name": "mobilenet_v1_x0_25", "class_num": 5},
                                               "teacher_weights": weights}})
    with pytest.raises(ConfigError, match="share one label set"):
        load_config(cfg, quiet=True)


@pytest.mark.parametrize("case", ["missing", "another architecture"])
def test_bad_teacher_weights_stop_the_tool_with_one_line(tmp_path, case):
    """Read when training starts (eval/export of the student need no teacher file)."""
    weights = (str(tmp_path / "nope.pdparams") if case == "missing"
               else _teacher_file(tmp_path, "shufflenet_v1_g3_x0_5"))
    cfg = distill_config(tmp_path, weights)
    load_config(cfg, quiet=True)
    result = run_tool("tools/train.py", "-c", cfg)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "Arch.models.0.Teacher.pretrained" in line
    assert ("weight file not found" if case == "missing" else "does not fit mobilenet_v1_x0_25") in line
