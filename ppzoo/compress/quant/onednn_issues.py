"""Where oneDNN's int8 kernels (Paddle 3.3.1, this CPU: AVX-512 VNNI + AMX) depart from
float32, and what the int8 exports keep in float32 because of it.

Found on a trained ShuffleNetV1 g3 0.5x (CIFAR-10) whose int8 model fell from 47 % to 14 %
top-1 while Paddle's own simulation of the same int8 program (the predictor without oneDNN)
agreed with float32; each case below is reproduced on a two- or three-layer model with
random weights (``benchmarks/onednn_int8_issues.py`` prints them):

1. **Grouped convolutions with more than 64 input channels per group, not a multiple of 64**
   (not depthwise). A 3-group 1x1 conv 240 -> 60 (80 per group) after a ReLU reaches cosine
   0.985 to float32, 204 -> 48 (68 per group) 0.955, while 192 -> 48 (64), 384 -> 48 (128),
   120 -> 30 (40) and every dense conv of the same shapes give 1.0000, per-channel or
   per-tensor weights alike. In a trained network the errors compound: ShuffleNetV1's
   first 1x1 group conv of each unit in stages 3 and 4 (240 and 480 inputs in the 0.5x
   model) alone took the output cosine to 0.64. Those convolutions stay float32.
2. **Padded average pooling** (``pool2d``, ``avg``, non-zero padding; not global): a 3x3,
   stride 1, pad 1 average pool on a ReLU output reaches cosine 0.957 (0.94 with
   ``exclusive=False``); unpadded average pools and padded max pools agree. ShuffleNetV1's
   stride-2 shortcut is such a pool. oneDNN chooses int8 by op type only, so when a model has
   one, every ``pool2d`` runs in float32.

3. **Fully connected layers (``fc``) with per-channel weight scales**: oneDNN's int8 ``fc``
   departs from the simulated program by up to 5-8 % (relative, per output) when the output
   channels' weight ranges differ (a 64 -> 16 layer with ranges spread by e^+-2; 1 % for
   the simulation), and by less when they are alike, as in a layer at initialisation. A
   trained classifier is such a layer (ShuffleNetV1's 480 -> 10: top-1 agreement 80 % with
   only ``fc`` in int8). CNN classifiers are a small share of the time, so ``fc`` always
   runs in float32.

All rules are checked again by the tests (``tests/test_quant.py``): when a newer Paddle
fixes a kernel, the test that shows the departure fails and the rule can go.
"""
from typing import Iterable, List

__all__ = ["grouped_conv_unsafe", "padded_avg_pools", "unsafe_conv_weights", "KNOWN_ISSUES"]

KNOWN_ISSUES = {
    "grouped_conv": "grouped convolution with more than 64 input channels per group, not a multiple of 64: "
                    "oneDNN int8 (Paddle 3.3.1) departs from float32, kept float32",
    "padded_avg_pool": "padded average pool(s): oneDNN int8 average pooling with padding departs from float32 "
                       "(Paddle 3.3.1), so every pool2d runs in float32",
    "fc": "oneDNN int8 fc with per-channel weight scales departs from float32 (Paddle 3.3.1): fc runs in float32",
}


def grouped_conv_unsafe(in_channels: int, groups: int) -> bool:
    """True for a grouped (not depthwise) convolution that oneDNN int8 gets wrong (rule 1)."""
    if groups <= 1 or groups >= in_channels:
        return False
    per_group = in_channels // groups
    return per_group > 64 and per_group % 64 != 0


def unsafe_conv_weights(block) -> List[str]:
    """Weight names of the convolutions of a legacy program block that rule 1 keeps float32."""
    out = []
    for op in block.ops:
        if op.type != "conv2d":
            continue
        weight = op.input("Filter")[0]
        shape = block.var(weight).shape  # [out, in / groups, kh, kw]
        groups = int(op.attr("groups"))
        if grouped_conv_unsafe(int(shape[1]) * groups, groups):
            out.append(weight)
    return out


def padded_avg_pools(ops: Iterable) -> List[str]:
    """Output names of the padded average pools (rule 2) among legacy program ops."""
    found = []
    for op in ops:
        if op.type != "pool2d" or op.attr("pooling_type") != "avg" or op.attr("global_pooling"):
            continue
        if op.attr("adaptive") or not any(op.attr("paddings")):
            continue
        found.append(op.output("Out")[0])
    return found
