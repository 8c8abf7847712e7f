"""Per-layer profile of a model from one forward pass at batch 1.

Conventions (the ones of ``../shared/reference/targets.md`` and of the papers' tables):

* **params**: trainable weights, BN scale and shift included, BN running statistics not.
* **MAdds**: multiply-adds of ``Conv2D`` (Cout * Hout * Wout * Cin/groups * k * k) and
  ``Linear`` (in * out) layers only; biases, BN, activations, pooling and element-wise
  ops are free. The papers call this "Mult-Adds", TF-slim "MACs", the ShuffleNet papers
  "FLOPs". ``paddle_flops`` gives Paddle's count for reference, which also charges BN,
  activations and pooling; PaddleClas's "FLOPs" are about twice our MAdds.
* **MAC**: memory access cost as in ShuffleNetV2 (arXiv 1807.11164, Sec. 2): elements
  each operator reads and writes, i.e. its inputs + outputs + the tensors it holds
  (weights, biases, BN statistics), counted per operator without fusion. A 1x1 conv
  costs hw(c1 + c2) + c1*c2. No-ops at inference (Identity, Dropout, Flatten) cost 0.
  ``mac_bytes`` multiplies by the dtype's size (4 for float32).
* **activations**: elements each operator writes.

Element-wise additions, multiplications and concatenations written as ``x + y``, ``x * y``
/ ``paddle.concat`` inside a container's ``forward`` are recorded too, as ``<layer>.add``,
``<layer>.multiply`` (counted like add: MAC 3N, no MAdds) and ``<layer>.concat``.

Per-type cost rules live in one table: :func:`register_cost` declares a layer type's
MAdds (and optionally MAC). A leaf layer that holds parameters and has no rule is counted
as 0 MAdds with a warning naming it, never silently.
"""
import contextlib
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn

from ..layers.dynamic_conv import AggregatedConv2D
from ..utils.params import count_params

__all__ = ["LayerStats", "ModelStats", "count_params", "count_madds", "profile_model", "paddle_flops", "forward_once",
           "summarize_by_kind", "register_cost", "cost_rule", "DTYPE_BYTES"]

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
_NO_OPS = (nn.Identity, nn.Dropout, nn.Flatten)


@dataclass
class LayerStats:
    """Cost of one operator for one image."""

    name: str
    type: str
    kind: str  # the category of summarize_by_kind: "conv 1x1", "depthwise conv 3x3", "fc", ...
    input_shape: List[int]
    output_shape: List[int]
    params: int  # trainable parameters it holds
    weights: int  # elements of its conv / linear weight (no bias): the papers' parameter tables
    madds: int
    mac: int
    activations: int
    paddle_flops: int = 0  # what paddle.flops charges this operator (Paddle's per-layer rules)
    held: int = 0  # elements of the tensors it holds (weights, BN statistics): the part of MAC a batch does not scale

    def mac_at(self, batch_size: int) -> int:
        """MAC for a batch: activations scale with it, held tensors are read once."""
        return batch_size * (self.mac - self.held) + self.held

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: MAdds per element moved."""
        return self.madds / self.mac if self.mac else 0.0


@dataclass
class ModelStats:
    """Totals over all operators plus the per-operator list, in execution order."""

    input_size: Sequence[int]
    params: int
    madds: int
    mac: int
    activations: int
    dtype: str = "float32"
    layers: List[LayerStats] = field(default_factory=list)

    @property
    def mac_bytes(self) -> int:
        return self.mac * DTYPE_BYTES[self.dtype]

    @property
    def intensity(self) -> float:
        return self.madds / self.mac if self.mac else 0.0

    @property
    def paddle_flops(self) -> int:
        return sum(r.paddle_flops for r in self.layers)

    def as_dict(self) -> dict:
        return {"input_size": list(self.input_size), "params": self.params, "madds": self.madds, "mac": self.mac,
                "mac_bytes": self.mac_bytes, "activations": self.activations, "intensity": self.intensity,
                "paddle_flops": self.paddle_flops, "dtype": self.dtype,
                "layers": [dict(asdict(r), intensity=r.intensity, mac_bytes=r.mac * DTYPE_BYTES[self.dtype])
                           for r in self.layers]}


def _numel(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def _kind(layer: nn.Layer) -> str:
    if isinstance(layer, nn.Conv2D):
        k = "x".join(str(v) for v in layer._kernel_size)
        groups, cin = layer._groups, layer._in_channels
        if groups == 1:
            return f"conv {k}"
        if groups == cin:
            return f"depthwise conv {k}"
        return f"group conv {k}"
    if isinstance(layer, nn.Linear):
        return "fc"
    if isinstance(layer, AggregatedConv2D):
        k = f"{layer.kernel_size}x{layer.kernel_size}"
        return f"dynamic {'depthwise ' if layer.groups == layer.in_channels > 1 else ''}conv {k}"
    if isinstance(layer, (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.LayerNorm, nn.GroupNorm)):
        return "norm"
    if isinstance(layer, (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardswish, nn.Hardsigmoid, nn.Softmax, nn.GELU)):
        return "activation"
    if isinstance(layer, (nn.MaxPool2D, nn.AvgPool2D, nn.AdaptiveAvgPool2D, nn.AdaptiveMaxPool2D)):
        return "pooling"
    if isinstance(layer, _NO_OPS):
        return "no-op"
    return type(layer).__name__.lower()  # channelshuffle, localresponsenorm, ...


CostFn = Callable[[nn.Layer, List[paddle.Tensor], List[paddle.Tensor]], Union[int, Tuple[int, Optional[int]]]]
_COST_RULES: Dict[type, CostFn] = {}


def register_cost(layer_type: type, fn: CostFn) -> None:
    """Declare how a layer type costs: ``fn(layer, inputs, outputs)`` returns its MAdds
    for one image, or ``(madds, mac)`` to replace the default MAC (elements of inputs +
    outputs + the tensors the layer holds). Subclasses inherit a rule (looked up along the
    MRO); registering a type again replaces its rule. Rules for ``ppzoo.layers`` types live
    here (that layer cannot import this one); compression layers (decomposed, quantized,
    binary) register theirs in ``ppzoo.compress``, where they are defined."""
    if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Layer)):
        raise ValueError(f"register_cost: layer_type must be an nn.Layer subclass, got {layer_type!r}")
    if not callable(fn):
        raise ValueError(f"register_cost: fn must be callable (layer, inputs, outputs) -> madds, got {fn!r}")
    _COST_RULES[layer_type] = fn


def cost_rule(layer_type: type) -> Optional[CostFn]:
    """The rule that applies to ``layer_type`` (its own or its nearest base's), or None."""
    return next((_COST_RULES[t] for t in layer_type.__mro__ if t in _COST_RULES), None)


def _conv_madds(layer, inputs, outputs) -> int:
    _, c_out, h, w = outputs[0].shape
    return c_out * h * w * _numel(layer.weight.shape[1:])  # weight is [Cout, Cin/groups, kh, kw]


def _linear_madds(layer, inputs, outputs) -> int:
    return _numel(outputs[0].shape[:-1]) * layer.weight.shape[0] * layer.weight.shape[1]


def _free(layer, inputs, outputs) -> int:
    return 0


register_cost(nn.Conv2D, _conv_madds)
register_cost(nn.Linear, _linear_madds)


def _dynamic_conv_madds(layer, inputs, outputs) -> int:
    """Aggregate the K kernels (and biases) for the image, then one conv (arXiv 1912.03458, Eq. 2)."""
    _, c_out, h, w = outputs[0].shape
    aggregate = _numel(layer.weight.shape) + (_numel(layer.bias.shape) if layer.bias is not None else 0)
    return aggregate + c_out * h * w * _numel(layer.weight.shape[2:])


register_cost(AggregatedConv2D, _dynamic_conv_madds)
for _type in (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
              nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardswish, nn.Hardsigmoid, nn.Softmax, nn.GELU, nn.MaxPool2D,
              nn.AvgPool2D, nn.AdaptiveAvgPool2D, nn.AdaptiveMaxPool2D, *_NO_OPS):
    register_cost(_type, _free)  # the convention: only convolutions and FC layers do multiply-adds


def _tensors(value) -> list:
    if isinstance(value, paddle.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


@contextlib.contextmanager
def _trace_functional_ops(stack: List[str], records: List[LayerStats], leaves=frozenset()):
    """Record ``Tensor + Tensor``, ``Tensor * Tensor`` and ``paddle.concat`` calls, named
    after the layer running; inside a leaf layer's own forward they are part of that layer's
    cost and not recorded apart."""
    add, mul, concat = paddle.Tensor.__add__, paddle.Tensor.__mul__, paddle.concat

    def elementwise(op, kind):
        def traced(self, other):
            out = op(self, other)
            if (stack[-1] not in leaves and isinstance(other, paddle.Tensor)
                    and _numel(other.shape) == _numel(self.shape) > 1):
                n = _numel(out.shape)
                records.append(LayerStats(f"{stack[-1]}.{kind}", kind.capitalize(), kind, list(self.shape),
                                          list(out.shape), 0, 0, 0, 3 * n, n))
            return out
        return traced

    def traced_concat(x, axis=0, name=None):
        out = concat(x, axis=axis, name=name)
        if stack[-1] not in leaves:
            n = _numel(out.shape)
            records.append(LayerStats(f"{stack[-1]}.concat", "Concat", "concat", list(x[0].shape), list(out.shape),
                                      0, 0, 0, 2 * n, n))
        return out

    paddle.Tensor.__add__, paddle.Tensor.__mul__ = elementwise(add, "add"), elementwise(mul, "multiply")
    paddle.concat = traced_concat
    try:
        yield
    finally:
        paddle.Tensor.__add__, paddle.Tensor.__mul__, paddle.concat = add, mul, concat


def forward_once(model: nn.Layer, input_size: Sequence[int], hooks: list) -> None:
    """One image of zeros through ``model`` in eval mode; removes ``hooks`` and restores
    the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, *input_size], dtype="float32"))
    finally:
        for h in hooks:
            h.remove()
        if was_training:
            model.train()


def _paddle_rule_flops(layer: nn.Layer, inputs, output) -> int:
    """What ``paddle.flops`` charges one call of a leaf layer: Paddle's rule for its type
    (``paddle.hapi.dynamic_flops.register_hooks``: convs with bias, BN, activations and
    pooling per element), 0 for types without a rule."""
    from paddle.hapi.dynamic_flops import register_hooks

    rule = register_hooks.get(type(layer))
    if rule is None:
        return 0
    layer.total_ops = paddle.zeros([1], dtype="int64")
    try:
        rule(layer, inputs, output)
        return int(layer.total_ops.numpy().reshape(-1)[0])
    finally:
        del layer.total_ops


def profile_model(model: nn.Layer, input_size: Sequence[int] = (3, 224, 224), dtype: str = "float32") -> ModelStats:
    """Run one image of ``input_size`` (C, H, W) through ``model`` in eval mode and record
    every operator that ran (leaf layers and traced element-wise ops)."""
    records: List[LayerStats] = []
    stack = [type(model).__name__]
    hooks, leaves, unknown = [], set(), {}

    def enter(name):
        def hook(layer, inputs):
            stack.append(name)
        return hook

    def leave(name, leaf):
        def hook(layer, inputs, output):
            stack.pop()
            if not leaf:
                return
            ins, outs = _tensors(inputs), _tensors(output)
            held = [p for p in layer.parameters(include_sublayers=False)]
            own = int(sum(_numel(p.shape) for p in held if p.trainable))
            kind = _kind(layer)
            moved = 0 if kind == "no-op" else (sum(_numel(t.shape) for t in ins + outs)
                                               + sum(_numel(p.shape) for p in held))
            weights = _numel(layer.weight.shape) if isinstance(layer, (nn.Conv2D, nn.Linear)) else 0
            rule, madds = cost_rule(type(layer)), 0
            if rule is not None and outs:
                cost = rule(layer, ins, outs)
                madds, mac = cost if isinstance(cost, tuple) else (cost, None)
                moved = moved if mac is None else mac
            elif rule is None and held and type(layer) not in unknown:
                unknown[type(layer)] = name
            records.append(LayerStats(name, type(layer).__name__, kind, list(ins[0].shape) if ins else [],
                                      list(outs[0].shape) if outs else [], own, weights, int(madds), int(moved),
                                      0 if kind == "no-op" else sum(_numel(t.shape) for t in outs),
                                      _paddle_rule_flops(layer, inputs, output),
                                      0 if kind == "no-op" else sum(_numel(p.shape) for p in held)))
        return hook

    for name, layer in model.named_sublayers(include_self=True):
        leaf = not layer.sublayers()
        name = name or type(layer).__name__  # the model itself (a single-layer model is its own leaf)
        if leaf:
            leaves.add(name)
        hooks.append(layer.register_forward_pre_hook(enter(name)))
        hooks.append(layer.register_forward_post_hook(leave(name, leaf)))
    with _trace_functional_ops(stack, records, leaves):
        forward_once(model, input_size, hooks)
    for layer_type, name in unknown.items():
        warnings.warn(f"no cost rule for {layer_type.__name__} (first at '{name}'), a layer with parameters: its "
                      "MAdds are counted as 0; declare them with ppzoo.analysis.register_cost"
                      f"({layer_type.__name__}, fn)", stacklevel=2)
    return ModelStats(tuple(input_size), count_params(model), sum(r.madds for r in records),
                      sum(r.mac for r in records), sum(r.activations for r in records), dtype, records)


def count_madds(model: nn.Layer, input_size: Sequence[int] = (3, 224, 224)) -> int:
    """Multiply-adds of one image (see the module docstring for the convention)."""
    return profile_model(model, input_size).madds


def paddle_flops(model: nn.Layer, input_size: Sequence[int] = (3, 224, 224)) -> int:
    """The total ``paddle.flops`` reports, from Paddle's own per-layer rules (see
    :func:`profile_model`), without ``paddle.flops``'s printing and summary, which fail
    under NumPy 2 in Paddle 3.3."""
    return profile_model(model, input_size).paddle_flops


def summarize_by_kind(stats: ModelStats, kinds: Optional[Sequence[str]] = None) -> List[dict]:
    """Totals per operator kind with their shares of MAdds, weights and MAC (%), largest
    MAdds first. ``weights`` counts conv and FC weight tensors only, as MobileNetV1's
    Table 2 does. ``kinds`` restricts the rows (shares stay relative to the whole model)."""
    rows: Dict[str, dict] = {}
    for r in stats.layers:
        row = rows.setdefault(r.kind, {"kind": r.kind, "layers": 0, "params": 0, "weights": 0, "madds": 0, "mac": 0})
        row["layers"] += 1
        for key in ("params", "weights", "madds", "mac"):
            row[key] += getattr(r, key)
    total_weights = sum(r.weights for r in stats.layers)
    out = []
    for row in sorted(rows.values(), key=lambda r: (-r["madds"], -r["mac"])):
        if kinds is not None and row["kind"] not in kinds:
            continue
        row["madds_share"] = 100.0 * row["madds"] / stats.madds if stats.madds else 0.0
        row["weights_share"] = 100.0 * row["weights"] / total_weights if total_weights else 0.0
        row["mac_share"] = 100.0 * row["mac"] / stats.mac if stats.mac else 0.0
        out.append(row)
    return out
