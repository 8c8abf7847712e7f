"""Low-rank factorisation (svd, spatial_svd, tucker2, cp) and product quantization (issue 14)."""
import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppzoo
from ppzoo.analysis import profile_model
from ppzoo.compress import save_compressed
from ppzoo.compress.lowrank import (METHODS, choose_ranks, decompose, energy_rank, evbmf_rank, layer_shapes,
                                    load_pq, pq_decode, pq_encode, product_quantize, save_pq)
from ppzoo.compress.lowrank.decompose import get_layer
from ppzoo.compress.lowrank.stage import check_lowrank
from ppzoo.config import ConfigError
from ppzoo.deploy.export import export_model
from ppzoo.deploy.predictor import Predictor
from ppzoo.utils.weights import WeightsError, load_weights

from conftest import randomise_weights

# (layer, method): strides, asymmetric padding, dilation and groups, each where the method takes them
CASES = [
    (lambda: nn.Linear(24, 18), "svd"),
    (lambda: nn.Conv2D(12, 16, 1, stride=2, padding=1, groups=2), "svd"),
    (lambda: nn.Conv2D(8, 12, (3, 5), stride=(2, 1), padding=[1, 0, 2, 1], dilation=(1, 2), groups=4), "spatial_svd"),
    (lambda: nn.Conv2D(8, 8, 3, padding=1, groups=8), "spatial_svd"),  # depthwise: per channel
    (lambda: nn.Conv2D(8, 12, 3, stride=2, padding=1, groups=2), "tucker2"),
    (lambda: nn.Conv2D(6, 10, (3, 5), stride=(1, 2), padding=[1, 2], dilation=(2, 1)), "tucker2"),
    (lambda: nn.Conv2D(4, 6, 3, stride=2, padding=1, groups=2), "cp"),
]
IDS = ["linear", "1x1-grouped", "3x5-grouped", "depthwise", "tucker-grouped", "tucker-3x5", "cp-grouped"]


def _input(layer, batch=2):
    if isinstance(layer, nn.Linear):
        return paddle.randn([batch, layer.weight.shape[0]])
    return paddle.randn([batch, layer._in_channels, 9, 11])


@pytest.mark.parametrize("make,method", CASES, ids=IDS)
def test_full_rank_reconstruction_equals_the_layer(make, method):
    layer = make()
    m = METHODS[method]
    new, err = m.factorize(layer, m.max_ranks(layer))
    x = _input(layer)
    y, y_new = layer(x).numpy(), new(x).numpy()
    assert y.shape == y_new.shape
    scale = np.abs(y).max()
    if method == "cp":  # ALS reaches a full-rank CP to a tolerance, not exactly
        assert err < 1e-3 and np.abs(y - y_new).max() < 1e-3 * scale
    else:  # SVD and HOSVD at full rank are exact up to float32 rounding
        assert err < 1e-6 and np.abs(y - y_new).max() < 1e-5 * scale


def test_cp_recovers_a_kernel_of_known_cp_rank():
    rng = np.random.default_rng(1)
    rank = 4
    a, b, y, x = (rng.standard_normal([n, rank]) for n in (10, 6, 3, 3))
    layer = nn.Conv2D(6, 10, 3, padding=1)
    layer.weight.set_value(np.einsum("nr,cr,yr,xr->ncyx", a, b, y, x).astype("float32"))
    new, err = METHODS["cp"].factorize(layer, [rank])
    assert err < 1e-3
    inp = _input(layer)
    assert np.abs(layer(inp).numpy() - new(inp).numpy()).max() < 1e-3 * np.abs(layer(inp).numpy()).max()


def test_cp_contracts_the_mttkrp_and_leaves_tensorly_as_it_was():
    """The contracted MTTKRP gives TensorLy's own ALS factors, and TensorLy's backend and
    einsum are restored afterwards."""
    import tensorly
    from tensorly.decomposition import parafac

    from ppzoo.compress.lowrank.factorize import _contracted_mttkrp

    block = np.random.default_rng(2).standard_normal([6, 5, 3, 3])
    plain = tensorly.cp_to_tensor(parafac(block, rank=7, init="svd", n_iter_max=20, tol=0, random_state=0))
    backend = type(tensorly.backend.BackendManager.current_backend())
    before = (tensorly.tenalg.get_backend(), backend.__dict__.get("einsum"))
    with _contracted_mttkrp(tensorly):
        assert tensorly.tenalg.get_backend() == "einsum"
        einsum = backend.__dict__["einsum"].__func__  # the registered contraction, on numpy's optimal path
        assert einsum.func is np.einsum and einsum.keywords == {"optimize": "optimal"}
        fast = tensorly.cp_to_tensor(parafac(block, rank=7, init="svd", n_iter_max=20, tol=0, random_state=0))
    assert (tensorly.tenalg.get_backend(), backend.__dict__.get("einsum")) == before
    np.testing.assert_allclose(fast, plain, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------- data-aware svd

def _responses(layer, x):
    """The statistics response_statistics gathers, for one layer on input x."""
    y = layer(paddle.to_tensor(x)).numpy().astype("float64")
    y = y.reshape(-1, y.shape[-1]) if y.ndim == 2 else y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])
    return {"mean": y.mean(0), "moment": y.T @ y / len(y)}, y


def _rows(layer, x):
    y = layer(paddle.to_tensor(x)).numpy().astype("float64")
    return y.reshape(-1, y.shape[-1]) if y.ndim == 2 else y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])


DATA_CASES = [(lambda: nn.Linear(24, 18), (64, 24)),
              (lambda: nn.Conv2D(12, 16, 1, groups=2, bias_attr=False), (4, 12, 5, 5)),
              (lambda: nn.Conv2D(12, 16, 1, stride=2, padding=1), (4, 12, 6, 6))]


@pytest.mark.parametrize("make,shape", DATA_CASES, ids=["linear-bias", "1x1-grouped-no-bias", "1x1-strided-bias"])
def test_data_aware_svd_is_exact_at_full_rank_and_fits_responses_better(make, shape):
    paddle.seed(0)
    layer, m = make(), METHODS["svd"]
    # correlated inputs with an offset, so the responses have a dominant subspace and a mean
    rng = np.random.default_rng(0)
    mix = rng.standard_normal([shape[1 if len(shape) == 4 else 1]] * 2)
    x = rng.standard_normal(shape) * 0.1
    x = (np.einsum("nc...,cd->nd...", x, mix) + 0.5).astype("float32") if len(shape) == 4 else \
        (x @ mix + 0.5).astype("float32")
    stats, y = _responses(layer, x)
    full, err = m.factorize(layer, m.max_ranks(layer), responses=stats)
    assert err < 1e-6
    np.testing.assert_allclose(_rows(full, x), y, atol=1e-4 * np.abs(y).max())
    r = max(1, m.max_ranks(layer)[0] // 3)
    plain, _ = m.factorize(layer, [r])
    fitted, reported = m.factorize(layer, [r], responses=stats)
    plain_err, fitted_err = (np.linalg.norm(_rows(f, x) - y) for f in (plain, fitted))
    assert fitted_err < 0.9 * plain_err  # the rank-r map closest to the layer on these images
    centred = np.linalg.norm(y - (y.mean(0) if layer.bias is not None else 0))
    assert reported == pytest.approx(fitted_err / centred, rel=1e-3)  # the reported error is the responses'


def test_decompose_with_calibration_images_fits_the_model_responses():
    from ppzoo.compress.lowrank import response_statistics

    model = _mobilenet()
    images = np.random.default_rng(0).standard_normal([16, 3, 32, 32]).astype("float32")
    model.train()
    model.blocks[0].eval()  # a sublayer in its own mode keeps it
    stats = response_statistics(model, ["fc", "blocks.12.1.0"], images, batch_size=5)
    assert model.training and not model.blocks[0].training and model.blocks[1].training
    model.eval()
    assert stats["fc"]["rows"] == 16 and stats["blocks.12.1.0"]["rows"] == 16 * 4 * 4  # 4x4 maps
    assert stats["fc"]["moment"].shape == (10, 10)
    reference = paddle.to_tensor(images)
    with paddle.no_grad():
        y = model(reference).numpy().astype("float64")
    np.testing.assert_allclose(stats["fc"]["mean"], y.mean(0), rtol=1e-5, atol=1e-6)
    report = decompose(model, "svd", ["blocks.12.1.0", "fc"], rank=8, input_size=(3, 32, 32), data=images)
    assert [r.layer for r in report.layers] == ["blocks.12.1.0", "fc"]
    assert all(0 <= r.error < 1 for r in report.layers) and report.layers[0].error > 0  # response errors
    with pytest.raises(ValueError, match="calibration_images.*for svd"):
        decompose(_mobilenet(), "tucker2", ["stem.0"], rank=[2, 2], input_size=(3, 32, 32), data=images)


def test_pq_error_correction_lowers_the_output_error_and_never_raises_it():
    from ppzoo.compress.lowrank import pq_decode, pq_encode, pq_refine, pq_response_error

    rng = np.random.default_rng(3)
    w = rng.standard_normal([40, 16])
    x = rng.standard_normal([500, 16]) @ rng.standard_normal([16, 16])  # correlated inputs
    gram = x.T @ x / len(x)
    codes, books = pq_encode(w, 4, 8)
    start = pq_response_error(w, pq_decode(codes, books), [gram])
    assert start == pytest.approx(np.linalg.norm(x @ (w - pq_decode(codes, books)).T) / np.linalg.norm(x @ w.T))
    errors = [start]
    for sweeps in (1, 2, 4):
        c, b = pq_refine(w, codes, books, [gram], sweeps=sweeps, ridge=0.0)
        assert c.shape == codes.shape and c.dtype == np.uint8 and b.shape == books.shape and b.dtype == np.float32
        errors.append(pq_response_error(w, pq_decode(c, b), [gram]))
    assert all(e2 <= e1 + 1e-9 for e1, e2 in zip(errors, errors[1:])), errors  # coordinate descent
    assert errors[-1] < 0.8 * start
    dead = gram.copy()
    dead[0, :] = dead[:, 0] = 0  # an input that never varies: G is singular, ridge 0 still works
    c, b = pq_refine(w, codes, books, [dead], sweeps=1, ridge=0.0)
    assert np.isfinite(b).all()
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        pq_refine(w, codes, books, [gram], ridge=-1.0)
    c, b = pq_refine(w, codes, books, [gram], ridge=1e6)  # a huge ridge: back to the weight error
    assert np.linalg.norm(w - pq_decode(c, b)) <= np.linalg.norm(w - pq_decode(codes, books)) + 1e-6


def test_input_moments_follow_stride_padding_and_groups():
    from ppzoo.compress.lowrank import input_moments

    paddle.seed(0)
    model = nn.Sequential(nn.Conv2D(3, 6, 3, padding=1), nn.Conv2D(6, 4, 1, stride=2, padding=1, groups=2))
    images = np.random.default_rng(0).standard_normal([3, 3, 7, 7]).astype("float32")
    grams = input_moments(model, ["1"], images, batch_size=2)["1"]
    with paddle.no_grad():
        x = model[0](paddle.to_tensor(images)).numpy().astype("float64")
    x = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])[:, :, ::2, ::2].transpose(0, 2, 3, 1).reshape(-1, 6)
    assert len(grams) == 2
    for g, gram in enumerate(grams):
        part = x[:, 3 * g:3 * g + 3]
        np.testing.assert_allclose(gram, part.T @ part / len(part), rtol=1e-5, atol=1e-8)


def test_product_quantize_with_calibration_images_corrects_grouped_convs(tmp_path):
    from ppzoo.compress.lowrank import load_pq

    arch = {"name": "shufflenet_v1_g3_x0_5", "class_num": 10, "small_input": True}
    model = randomise_weights(ppzoo.create_model(arch["name"], num_classes=10, small_input=True))
    images = np.random.default_rng(0).standard_normal([8, 3, 32, 32]).astype("float32")
    report = product_quantize(model, ["stages.2.3.*"], subvector=2, codebook=16, arch=arch, data=images)
    grouped = [r for r in report.layers if getattr(get_layer(model, r.layer), "_groups", 1) > 1]
    # the ridged objective is the one guaranteed not to rise; the output error falls overall
    assert grouped and sum(r.response_error[1] for r in report.layers) < sum(r.response_error[0] for r in report.layers)
    assert any(r.response_error[1] < 0.95 * r.response_error[0] for r in grouped)
    size = save_pq(model, str(tmp_path / "m"))  # the corrected weights still lie on their codebooks
    state = load_pq(str(tmp_path / "m.pq.npz"))
    assert size > 0
    for r in report.layers:
        np.testing.assert_array_equal(state[f"{r.layer}.weight"], get_layer(model, r.layer).weight.numpy())


@pytest.mark.parametrize("method,ranks", [("svd", [1, 4, 8, 16]), ("spatial_svd", [1, 6, 12, 24]),
                                          ("tucker2", [[1, 1], [2, 3], [4, 6], [8, 12]]), ("cp", [1, 4, 12, 24])])
def test_error_falls_as_rank_grows(method, ranks):
    layer = {"svd": lambda: nn.Linear(16, 24), "spatial_svd": lambda: nn.Conv2D(8, 12, 3),
             "tucker2": lambda: nn.Conv2D(8, 12, 3), "cp": lambda: nn.Conv2D(4, 6, 3)}[method]()
    m = METHODS[method]
    errors = [m.factorize(layer, r if isinstance(r, list) else [r])[1] for r in ranks]
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[0] > 0.3  # rank 1 of a random kernel loses most of it


@pytest.mark.parametrize("make,method", CASES, ids=IDS)
def test_params_and_madds_follow_the_closed_forms(make, method):
    layer = make()
    m = METHODS[method]
    full = m.max_ranks(layer)
    ranks = [max(1, r // 2) for r in full]
    new = m.build(layer, ranks)
    assert sum(int(np.prod(p.shape)) for p in new.parameters()) == m.params(layer, ranks)
    if isinstance(layer, nn.Linear):
        in_shape, out_shape = (layer.weight.shape[0],), (layer.weight.shape[1],)
        size = None
    else:
        size = (layer._in_channels, 9, 11)
        out_shape = tuple(layer(paddle.zeros([1, *size])).shape[1:])
        in_shape = size
    # ppzoo.analysis counts the factorised layer's plain Conv2D/Linear sublayers
    if size is not None:
        stats = profile_model(new, size)
        assert stats.madds == m.madds(layer, ranks, in_shape, out_shape)
        assert stats.params == m.params(layer, ranks)
    else:
        assert m.madds(layer, ranks, in_shape, out_shape) == ranks[0] * sum(layer.weight.shape)


def test_closed_forms_by_hand():
    """Denton/Jaderberg/Kim/Lebedev parameter counts written out for one layer."""
    conv = nn.Conv2D(64, 96, 3, padding=1)
    n, c, k = 96, 64, 3
    assert METHODS["spatial_svd"].params(conv, [20]) == 20 * (c * k + n * k) + n
    assert METHODS["tucker2"].params(conv, [16, 24]) == c * 16 + 16 * 24 * 9 + 24 * n + n
    assert METHODS["cp"].params(conv, [30]) == 30 * (c + k + k + n) + n
    assert METHODS["svd"].params(nn.Linear(100, 50), [10]) == 10 * 150 + 50
    # MAdds on a 16x16 map at stride 1 and same padding
    hw = 16 * 16
    shape = (c, 16, 16), (n, 16, 16)
    assert METHODS["tucker2"].madds(conv, [16, 24], *shape) == hw * (c * 16 + 16 * 24 * 9 + 24 * n)
    assert METHODS["cp"].madds(conv, [30], *shape) == hw * 30 * (c + k + k + n)
    assert METHODS["spatial_svd"].madds(conv, [20], *shape) == hw * 20 * (c * k + n * k)


def test_skips_say_why_and_never_build_a_wrong_layer():
    depthwise = nn.Conv2D(8, 8, 3, groups=8)
    for method in ("svd", "tucker2", "cp"):
        with pytest.raises(Exception, match="depthwise|3x3 conv"):
            METHODS[method].geometry(depthwise)
    with pytest.raises(Exception, match="SAME"):
        METHODS["tucker2"].geometry(nn.Conv2D(8, 8, 3, padding="SAME"))
    with pytest.raises(Exception, match="already one-dimensional"):
        METHODS["spatial_svd"].geometry(nn.Conv2D(8, 8, (3, 1)))


def test_rank_choice_by_energy_ratio_and_vbmf():
    assert energy_rank([3, 2, 1], 0.5) == 1 and energy_rank([3, 2, 1], 0.9) == 2 and energy_rank([3, 2, 1], 1.0) == 3
    rng = np.random.default_rng(0)
    for true in (0, 3, 12):
        signal = rng.standard_normal([120, true]) @ rng.standard_normal([true, 200]) if true else 0
        assert evbmf_rank(signal + 0.1 * rng.standard_normal([120, 200])) == true
    fc = nn.Linear(40, 60)
    r = choose_ranks("svd", fc, "fc", ratio=0.25)[0]
    assert METHODS["svd"].params(fc, [r]) <= 0.25 * (40 * 60 + 60) < METHODS["svd"].params(fc, [r + 1])
    conv = nn.Conv2D(16, 32, 3)
    r1, r2 = choose_ranks("tucker2", conv, "c", ratio=0.3)
    assert METHODS["tucker2"].params(conv, [r1, r2]) <= 0.3 * (16 * 32 * 9 + 32) and r2 == pytest.approx(2 * r1, abs=1)
    assert choose_ranks("tucker2", conv, "c", energy=1.0) == [16, 32]
    assert choose_ranks("svd", fc, "fc", energy=1.0) == [40]


def test_bad_inputs_are_one_line_errors_naming_the_key():
    fc = nn.Linear(40, 60)
    for kwargs, pattern in [({"rank": 0}, r"rank.*outside \[1, 40\].*'fc'"), ({"rank": 41}, r"rank.*outside"),
                            ({"energy": 1.5}, r"energy' must be in \(0, 1\]"), ({"energy": 0.0}, "energy"),
                            ({"ratio": 2.0}, "ratio' must be in"), ({}, "exactly one of"),
                            ({"rank": 4, "energy": 0.5}, "exactly one of")]:
        with pytest.raises(ValueError, match=pattern) as e:
            choose_ranks("svd", fc, "fc", **kwargs)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="cp takes rank or ratio"):
        choose_ranks("cp", nn.Conv2D(4, 4, 3), "c", energy=0.9)
    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, small_input=True)
    with pytest.raises(ValueError, match=r"Slim.lowrank.layers.*'nonexistent\.\*' matches no layer"):
        decompose(model, "svd", ["nonexistent.*"], rank=2, input_size=(3, 32, 32))
    with pytest.raises(ValueError, match="svd can factorise none"):
        decompose(model, "svd", ["stem.*"], rank=2, input_size=(3, 32, 32))
    with pytest.raises(ValueError, match=r"subspaces.*3 does not divide the input width 256 of layer 'fc'"):
        product_quantize(model, ["fc"], subspaces=3)
    with pytest.raises(ValueError, match="codebook"):
        product_quantize(model, ["fc"], codebook=300)


@pytest.mark.parametrize("value,key,pattern", [
    ({"name": "svdd", "rank": 2}, "Slim.lowrank.name", "must be one of"),
    ({"name": "svd", "rank": 0}, "Slim.lowrank.rank", ">= 1"),
    ({"name": "svd", "energy": 1.2}, "Slim.lowrank.energy", r"\(0, 1\]"),
    ({"name": "svd", "ratio": 0}, "Slim.lowrank.ratio", r"\(0, 1\]"),
    ({"name": "svd"}, "Slim.lowrank.rank", "exactly one of"),
    ({"name": "cp", "energy": 0.9}, "Slim.lowrank.energy", "rank, ratio for cp"),
    ({"name": "svd", "rank": [2, 3]}, "Slim.lowrank.rank", "must be an int"),
    ({"name": "pq", "rank": 4}, "Slim.lowrank.rank", "does not apply to pq"),
    ({"name": "pq", "codebook": 512}, "Slim.lowrank.codebook", r"\[2, 256\]"),
    ({"name": "tucker2", "vbmf": True, "subvector": 4}, "Slim.lowrank.subvector", "pq only"),
    ({"name": "svd", "rank": 2, "layers": []}, "Slim.lowrank.layers", "non-empty list"),
    ({"name": "svd", "rank": 2, "rnak": 3}, "Slim.lowrank.rnak", "did you mean rank"),
    ({"name": "tucker2", "rank": 2, "calibration_images": 64}, "Slim.lowrank.calibration_images", "with name: svd or"),
    ({"name": "svd", "rank": 2, "calibration_images": -1}, "Slim.lowrank.calibration_images", "int >= 0"),
])
def test_config_checker(value, key, pattern):
    with pytest.raises(ConfigError, match=pattern) as e:
        check_lowrank(value, {})
    assert e.value.key == key and "\n" not in str(e.value)


def test_config_checker_fills_defaults():
    p = check_lowrank({"name": "tucker2", "rank": [8, 16], "layers": "features.*"}, {})
    assert p["layers"] == ["features.*"] and p["fine_tune_epochs"] == 0 and p["min_speedup"] == 1.05
    assert check_lowrank({"name": "pq"}, {})["codebook"] == 256


ARCH = {"name": "mobilenet_v1_x0_25", "class_num": 10, "small_input": True}


def _mobilenet():
    """MobileNetV1 0.25x for 32x32 images, random weights and BN statistics, eval mode:
    stem.0 (3x3 conv), blocks.<i>.0.0 (3x3 depthwise), blocks.<i>.1.0 (1x1), fc."""
    return randomise_weights(ppzoo.create_model(ARCH["name"], num_classes=10, small_input=True))


def test_decomposed_model_exports_rebuilds_and_refuses_the_original(tmp_path):
    model = _mobilenet()
    x = paddle.randn([2, 3, 32, 32])
    report = decompose(model, "svd", ["blocks.12.1.0", "fc"], rank=8, input_size=(3, 32, 32), arch=ARCH)
    decompose(model, "tucker2", ["stem.0"], rank=[2, 4], input_size=(3, 32, 32))
    decompose(model, "spatial_svd", ["blocks.3.0.0"], rank=2, input_size=(3, 32, 32))
    assert [r.layer for r in report.layers] == ["blocks.12.1.0", "fc"] and report.layers[1].ranks == [8]
    names = [n for n, l in model.named_sublayers() if isinstance(l, (nn.Conv2D, nn.Linear))]
    assert {"blocks.12.1.0.0", "blocks.12.1.0.1", "fc.1", "stem.0.2", "blocks.3.0.0.1"} <= set(names)
    y = model(x).numpy()
    folder = tmp_path / "export"
    export_model(model, str(folder), (3, 32, 32))
    assert np.abs(Predictor(str(folder), onednn=False).run(x.numpy()) - y).max() <= 1e-4 * max(1, np.abs(y).max())

    arch_file = save_compressed(model, str(tmp_path / "lowrank"))
    passes = __import__("json").load(open(arch_file))["passes"]
    assert [p["method"] for p in passes] == ["svd", "tucker2", "spatial_svd"]
    rebuilt = ppzoo.create_model(arch_file, pretrained=str(tmp_path / "lowrank.pdparams"))
    rebuilt.eval()
    assert np.abs(rebuilt(x).numpy() - y).max() == 0.0
    assert profile_model(rebuilt, (3, 32, 32)).madds == profile_model(model, (3, 32, 32)).madds
    with pytest.raises(WeightsError, match=r"compressed model; build it from .*lowrank\.arch\.json") as e:
        load_weights(ppzoo.create_model(ARCH["name"], num_classes=10, small_input=True),
                     str(tmp_path / "lowrank.pdparams"))
    assert "\n" not in str(e.value)


def test_decomposed_model_fine_tunes():
    model = _mobilenet()
    decompose(model, "cp", ["stem.0"], rank=4, input_size=(3, 32, 32))
    model.train()
    opt = paddle.optimizer.SGD(0.01, parameters=model.parameters())
    x, t = paddle.randn([4, 3, 32, 32]), paddle.to_tensor([0, 1, 2, 3])
    before = model.stem[0][1].weight.numpy().copy()
    nn.functional.cross_entropy(model(x), t).backward()
    opt.step()
    assert np.abs(model.stem[0][1].weight.numpy() - before).max() > 0


def test_automatic_plan_keeps_only_cheaper_and_measured_faster_layers():
    lines = []
    report = decompose(nn.Sequential(nn.Conv2D(3, 64, 3, padding=1)), "tucker2", "auto", rank=[3, 64],
                       input_size=(3, 16, 16), log=lines.append)
    # at full rank Tucker-2 costs more MAdds than the conv: it is kept, and the plan says why
    assert not report.layers and [s["layer"] for s in report.skipped] == ["0"] and "not cheaper" in lines[0]
    model = nn.Sequential(nn.Conv2D(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2D(64, 64, 3, padding=1))
    randomise_weights(model)
    report = decompose(model, "tucker2", "auto", rank=[3, 4], min_speedup=0.0, input_size=(3, 16, 16))
    assert [r.layer for r in report.layers] == ["0", "2"]
    assert all(set(r.speedup) == {"batch1", "batch8"} and r.madds_after < r.madds_before for r in report.layers)
    model = nn.Sequential(nn.Conv2D(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2D(64, 64, 3, padding=1))
    report = decompose(model, "tucker2", "auto", rank=[3, 4], min_speedup=1e6, input_size=(3, 16, 16))
    assert not report.layers and all("measured not faster" in s["reason"] for s in report.skipped)


def test_pq_codes_round_trip_and_bytes(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal([64, 32]).astype("float32")
    codes, books = pq_encode(matrix, subvector=4, codebook=16)
    assert codes.dtype == np.uint8 and codes.shape == (8, 64) and books.shape == (8, 16, 4)
    approx = pq_decode(codes, books)
    assert 0 < np.linalg.norm(matrix - approx) / np.linalg.norm(matrix) < 0.8
    exact_codes, exact_books = pq_encode(matrix, subvector=4, codebook=64)  # K = rows: every vector its own centroid
    assert np.allclose(pq_decode(exact_codes, exact_books), matrix, atol=1e-6)

    model = _mobilenet()
    x = paddle.randn([2, 3, 32, 32])
    report = product_quantize(model, "auto", subvector=4, codebook=16, arch=ARCH)
    quantized = {r.layer for r in report.layers}
    assert "blocks.12.1.0" in quantized and not any(n.endswith(".0.0") or n == "stem.0" for n in quantized)
    # fc has 10 output units and blocks.0's 1x1 conv 16: their codebooks would outweigh the weights
    assert [s["layer"] for s in report.skipped] == ["blocks.0.1.0", "fc"]
    assert all("would not be smaller" in s["reason"] for s in report.skipped)
    y = model(x).numpy()
    size = save_pq(model, str(tmp_path / "mnv1"))
    dense = load_pq(str(tmp_path / "mnv1.pq.npz"))
    fresh = ppzoo.create_model(ARCH["name"], num_classes=10, small_input=True)
    load_weights(fresh, dense)
    fresh.eval()
    assert np.abs(fresh(x).numpy() - y).max() == 0.0
    # the file holds the codes and codebooks instead of the quantized weights, plus the rest as float32
    total = sum(int(np.prod(v.shape)) * 4 for v in model.state_dict().values())
    with np.load(str(tmp_path / "mnv1.pq.npz")) as f:
        payload = {k: f[k].nbytes for k in f.keys() if not k.endswith(("::shape", "::linear"))}
    assert sum(payload.values()) == total - sum(r.dense_bytes - r.pq_bytes for r in report.layers)
    assert size - sum(payload.values()) < 500 * 2 * len(payload)  # zip and .npy headers only
    # the rebuilt model keeps its pq weights frozen, so fine-tuning keeps them on the codebooks
    arch_file = save_compressed(model, str(tmp_path / "pq"))
    rebuilt = ppzoo.create_model(arch_file, pretrained=str(tmp_path / "pq.pdparams"))
    assert not rebuilt.blocks[12][1][0].weight.trainable and rebuilt.blocks[12][0][0].weight.trainable
    # frozen, they are still the model's weights: the params count (reports, logs) does not drop
    from ppzoo.utils.params import count_params

    assert count_params(rebuilt) == count_params(fresh) == profile_model(fresh, (3, 32, 32)).params
    assert save_pq(rebuilt, str(tmp_path / "again")) == size


def test_layer_shapes_and_patterns():
    model = _mobilenet()
    shapes = layer_shapes(model, (3, 32, 32))
    assert shapes["fc"] == ((256,), (10,)) and shapes["stem.0"] == ((3, 32, 32), (8, 32, 32))
    report = decompose(model, "spatial_svd", ["blocks.0"], energy=0.5, input_size=(3, 32, 32))
    assert [r.layer for r in report.layers] == ["blocks.0.0.0"]  # the depthwise 3x3, per channel
    assert report.skipped == [{"layer": "blocks.0.1.0", "reason": "1x1 kernel is already one-dimensional "
                                                                 "(use svd for 1x1)"}]


def test_missing_tensorly_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tensorly", None)  # import tensorly now raises ImportError
    with pytest.raises(ValueError, match=r"tucker2 and cp need TensorLy: pip install 'ppzoo\[lowrank\]'"):
        METHODS["tucker2"].factorize(nn.Conv2D(4, 6, 3), [2, 2])
    assert METHODS["svd"].factorize(nn.Linear(4, 6), [2])[1] > 0  # SVD needs numpy only


def test_compress_tool_runs_the_lowrank_stage(tmp_path):
    """tools/compress.py's runner with Slim.lowrank: the stage factorises, fine-tunes, and the
    report measures the result."""
    from ppzoo.config import load_config
    from ppzoo.engine import train
    from ppzoo.engine.recipe import compress

    from conftest import out_dir, tiny_config

    path = tiny_config(tmp_path, **{"Global.epochs": 1, "Global.image_shape": [3, 16, 16]})
    train(load_config(path))
    weights = str(out_dir(tmp_path) / "best_model.pdparams")
    cfg = load_config(path, [f"Global.pretrained_model={weights}",
                             "Slim={lowrank: {name: svd, layers: [blocks.12.1.0, fc], rank: 8, fine_tune_epochs: 1}}"])
    base_entry, stage = compress(cfg, repeat=2)["stages"]
    assert stage["stage"] == "lowrank" and [r["layer"] for r in stage["info"]["layers"]] == ["blocks.12.1.0", "fc"]
    assert base_entry["params"] - stage["params"] == (256 * 256 - 8 * 512) + (256 * 10 - 8 * 266)
    folder = out_dir(tmp_path) / "compress" / "1_lowrank"
    rebuilt = ppzoo.create_model(str(folder / "model.arch.json"), pretrained=str(folder / "model.pdparams"))
    assert isinstance(rebuilt.fc, nn.Sequential)


def test_pq_stage_reports_the_bytes_of_codes_and_codebooks(tmp_path):
    import logging

    from ppzoo.compress import StageContext
    from ppzoo.compress.lowrank import run_lowrank

    tuned = []
    ctx = StageContext(cfg={"Global": {"image_shape": [3, 32, 32]}}, key="lowrank", arch=ARCH,
                       params=check_lowrank({"name": "pq", "layers": ["blocks.12.*"], "codebook": 16,
                                             "fine_tune_epochs": 1}, {}),
                       out_dir=str(tmp_path), logger=logging.getLogger("test_lowrank"), loader=None,
                       fine_tune=lambda model, epochs: tuned.append(epochs) or model)
    result = run_lowrank(_mobilenet(), ctx)
    assert tuned == [1] and [r["layer"] for r in result.info["layers"]] == ["blocks.12.1.0"]
    assert result.info["skipped"][0]["layer"] == "blocks.12.0.0"  # the depthwise conv, with its reason
    assert result.info["file_bytes"] == (tmp_path / "model.pq.npz").stat().st_size == result.info["pq_file_bytes"]

