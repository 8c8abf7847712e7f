"""The three places where oneDNN's int8 kernels depart from float32 on this machine
(Paddle 3.3.1), each on a two- or three-layer model with random weights, next to a control
of the same shapes that agrees. ``ppzoo.compress.quant.onednn_issues`` keeps the failing
cases in float32; this script is their evidence and says when a new Paddle fixes one.

For every case: the model's float32 output, the int8 program run by Paddle's own simulation
(the predictor without oneDNN) and run by oneDNN int8, compared by the worst relative error
over output channels (||int8_c - fp32_c|| / ||fp32_c|| across 64 inputs). A departure: oneDNN's
worst error is above 3 % and over 3x the simulation's; agreement: within 1.5x + 1 %. PTQ: abs_max
observer, per-channel weights, Paddle's ``PostTrainingQuantization`` (legacy program format).

    python benchmarks/onednn_int8_issues.py [--json docs/results/onednn_int8_issues.json]

Exit code 0 when every departure is still there and every control agrees; 1 otherwise (a
fixed kernel: the matching rule of onednn_issues can go).
"""
import os

os.environ["FLAGS_enable_pir_api"] = "0"  # the int8 path that runs (docs/compression.md); before paddle

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.inference as paddle_infer  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402


def departs(onednn, simulated):
    return onednn > max(0.03, 3 * simulated)


def agrees(onednn, simulated):
    return onednn <= 1.5 * simulated + 0.01


class GroupedConv(nn.Layer):
    """stem 3x3 -> ReLU -> 1x1 conv (``groups``) -> ReLU -> 1x1 head -> global mean."""

    def __init__(self, cin, cout, groups):
        super().__init__()
        self.stem = nn.Conv2D(3, cin, 3, padding=1)
        self.conv = nn.Conv2D(cin, cout, 1, groups=groups)
        self.head = nn.Conv2D(cout, 16, 1)

    def forward(self, x):
        return self.head(F.relu(self.conv(F.relu(self.stem(x))))).mean([2, 3])


class AvgPoolConcat(nn.Layer):
    """ShuffleNetV1's stride-2 unit in small: concat(avg_pool(relu(stem)), branch) -> ReLU -> head."""

    def __init__(self, padding, kind="avg"):
        super().__init__()
        self.padding, self.kind = padding, kind
        self.stem = nn.Conv2D(3, 24, 3, padding=1)
        self.a, self.b = nn.Conv2D(24, 24, 1), nn.Conv2D(24, 24, 3, padding=1, groups=24)
        self.head = nn.Conv2D(48, 16, 1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        pool = F.avg_pool2d if self.kind == "avg" else F.max_pool2d
        p = pool(x, 3, 1, self.padding)
        if not self.padding:
            p = F.pad(p, [1, 1, 1, 1])
        return self.head(F.relu(paddle.concat([p, self.b(F.relu(self.a(x)))], 1))).mean([2, 3])


class Classifier(nn.Layer):
    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Linear(cin, cout)

    def forward(self, x):
        return self.fc(x)


def spread_rows(layer, spread, rng):
    """Scale each output channel's weights by e^u, u ~ U(-spread, spread): the unequal
    per-channel ranges of a trained layer (random initialisation has alike ranges)."""
    w = layer.weight.numpy()
    shape = (1, w.shape[1]) if w.ndim == 2 else (w.shape[0], 1, 1, 1)
    layer.weight.set_value((w * np.exp(rng.uniform(-spread, spread, shape))).astype("float32"))


CASES = [  # name, rule of onednn_issues (None: a control), model factory, input kind, weight spread
    ("grouped 1x1 conv 240->60, 3 groups (80 in/group)", "grouped_conv", lambda: GroupedConv(240, 60, 3), "conv", 1),
    ("grouped 1x1 conv 204->48, 3 groups (68 in/group)", "grouped_conv", lambda: GroupedConv(204, 48, 3), "conv", 1),
    ("grouped 1x1 conv 192->48, 3 groups (64 in/group)", None, lambda: GroupedConv(192, 48, 3), "conv", 1),
    ("grouped 1x1 conv 120->30, 3 groups (40 in/group)", None, lambda: GroupedConv(120, 30, 3), "conv", 1),
    ("dense 1x1 conv 240->60", None, lambda: GroupedConv(240, 60, 1), "conv", 1),
    ("3x3/1 average pool, padding 1, then concat", "padded_avg_pool", lambda: AvgPoolConcat(1), "conv", 0),
    ("3x3/1 average pool, no padding, then concat", None, lambda: AvgPoolConcat(0), "conv", 0),
    ("3x3/1 max pool, padding 1, then concat", None, lambda: AvgPoolConcat(1, "max"), "conv", 0),
    ("fc 64->16, per-channel ranges spread e^+-2", "fc", lambda: Classifier(64, 16), "fc", 2),
    ("fc 64->16, alike per-channel ranges", None, lambda: Classifier(64, 16), "fc", 0),
]


def run_predictor(folder, x, onednn):
    config = paddle_infer.Config(os.path.join(folder, "inference.pdmodel"), os.path.join(folder, "inference.pdiparams"))
    config.disable_gpu()
    config.disable_glog_info()
    config.set_cpu_math_library_num_threads(2)
    if onednn:
        config.enable_onednn()
        config.enable_onednn_int8()
    predictor = paddle_infer.create_predictor(config)
    predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def worst_channel_error(out, reference):
    out, reference = out.reshape(len(out), -1), reference.reshape(len(reference), -1)
    return float(np.max(np.linalg.norm(out - reference, axis=0) / np.linalg.norm(reference, axis=0)))


def run_case(factory, kind, spread, work, seed=0):
    from paddle.static import InputSpec
    from paddle.static.quantization import PostTrainingQuantization

    paddle.disable_static()
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    model = factory()
    model.eval()
    for layer in model.sublayers():
        if isinstance(layer, (nn.Conv2D, nn.Linear)) and layer is not getattr(model, "stem", None):
            spread_rows(layer, spread, rng)
    shape = [64] if kind == "fc" else [3, 8, 8]
    x = (rng.random([64, *shape]) if kind == "fc" else rng.standard_normal([64, *shape])).astype("float32")
    with paddle.no_grad():
        reference = model(paddle.to_tensor(x)).numpy()
    fp32, int8 = os.path.join(work, "fp32"), os.path.join(work, "int8")
    paddle.jit.save(model, os.path.join(fp32, "inference"), input_spec=[InputSpec([None, *shape], "float32", "x")])
    paddle.enable_static()
    ptq = PostTrainingQuantization(
        paddle.static.Executor(paddle.CPUPlace()), fp32, model_filename="inference.pdmodel",
        params_filename="inference.pdiparams", data_loader=lambda: ({"x": x[i:i + 16]} for i in range(0, 64, 16)),
        batch_nums=4, algo="abs_max", quantizable_op_type=["conv2d", "depthwise_conv2d", "matmul_v2", "mul"],
        weight_quantize_type="channel_wise_abs_max", onnx_format=True)
    ptq.quantize()
    ptq.save_quantized_model(int8, model_filename="inference.pdmodel", params_filename="inference.pdiparams")
    paddle.disable_static()
    return {"simulated": worst_channel_error(run_predictor(int8, x, False), reference),
            "onednn_int8": worst_channel_error(run_predictor(int8, x, True), reference)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.INFO)  # PostTrainingQuantization's progress lines
    rows, ok = [], True
    for name, rule, factory, kind, spread in CASES:
        with tempfile.TemporaryDirectory() as work:
            row = {"case": name, "rule": rule, "weight_spread": spread, **run_case(factory, kind, spread, work)}
        row["departs"] = departs(row["onednn_int8"], row["simulated"])
        row["as_expected"] = row["departs"] if rule else agrees(row["onednn_int8"], row["simulated"])
        ok &= row["as_expected"]
        rows.append(row)
        print(f"{name:52s} rule {str(rule):16s} worst channel error: simulated {row['simulated']:.4f}  oneDNN int8 "
              f"{row['onednn_int8']:.4f}  {'as expected' if row['as_expected'] else 'CHANGED'}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": "python benchmarks/onednn_int8_issues.py --json " + args.json,
                       "paddle": paddle.__version__, "cases": rows}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
