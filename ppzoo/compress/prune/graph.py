"""Channel dependencies of a model, found by tracing one forward pass.

Why a trace of the eager forward and not a hand-written table per family: every family
builds its blocks from the same few layers (``Conv2D``, ``BatchNorm*``, ``Linear``,
activations, pooling, ``ChannelShuffle``) joined by three functional ops (``x + y``,
``paddle.concat``, ``paddle.flatten``). Forward hooks on the leaf layers and wrappers
around those three functions see every channel-carrying step, and the identity of the
tensors (``id()`` of the objects passed from one step to the next; all are kept alive
during the trace) says which step feeds which. A tensor that reaches a layer without
having been produced by a step the trace understands is the sign of an operation it cannot
map; the trace then stops with an error naming that operation (Paddle's autograd node) and
the layer it feeds, so an unknown model is never pruned into a broken one. (A static
``paddle.jit`` program would list every op too, but maps them back to layers and their
attributes (groups, axes) only through parameter names; the eager trace has the layers.)

The trace labels every channel with an *atom* id:

* a ``Conv2D`` (not depthwise) or ``Linear`` creates new atoms for its outputs;
* a depthwise ``Conv2D`` (groups == in == out channels), ``BatchNorm`` and element-wise
  layers pass their input's atoms through (depthwise convs "follow their input");
* ``x + y`` ties the atoms of both operands position by position (residuals);
* ``paddle.concat(axis=1)`` concatenates the operands' atom lists (concat maps slices);
* ``ChannelShuffle(g)`` permutes the atoms; channel ``j`` of every one of the g input
  groups must then be kept or removed together, or the pruned tensor would no longer be
  a channel shuffle of its new width;
* ``paddle.flatten`` of an N x C x H x W map gives C*H*W features, H*W per atom;
* ``LocalResponseNorm`` mixes neighbouring channels: its channels are frozen (removing
  one would change its neighbours' windows), as are the model's input and output.

Grouped convolutions add *partitions*: their input and output atoms fall in g contiguous
blocks, and a pruned model keeps the same number of channels in every block, so that
``groups`` still divides both channel counts (ShuffleNetV1's pointwise group convs,
AlexNet's two towers). :mod:`.plan` turns atoms, ties and partitions into a choice of
channels that satisfies all of them.
"""
import contextlib
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from ...layers import ChannelShuffle, LocalResponseNorm

__all__ = ["UnmappedOperation", "LayerNode", "ChannelGraph", "trace_channels"]

_NORMS = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D)
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardswish, nn.Hardsigmoid, nn.GELU, nn.Silu, nn.Swish, nn.Tanh,
                nn.LeakyReLU, nn.ELU, nn.Dropout, nn.Identity, nn.MaxPool2D, nn.AvgPool2D, nn.AdaptiveAvgPool2D,
                nn.AdaptiveMaxPool2D)


class UnmappedOperation(ValueError):
    """The model holds an operation the channel analysis cannot map; pruning it would risk
    a broken model."""


@dataclass
class _Info:
    atoms: np.ndarray  # atom id of every channel
    rep: int = 1  # features per atom (flattened maps: H*W)
    flat: bool = False


@dataclass
class LayerNode:
    """One Conv2D / BatchNorm / Linear seen by the trace.

    ``in_atoms`` / ``out_atoms``: atom ids of its input and output channels (for Linear,
    ``in_rep`` input features per atom); ``groups``; ``spatial``: output H*W (conv).
    """

    name: str
    kind: str  # "conv", "depthwise", "norm", "linear"
    layer: nn.Layer
    in_atoms: np.ndarray
    out_atoms: np.ndarray
    groups: int = 1
    spatial: int = 1
    in_rep: int = 1


@dataclass
class ChannelGraph:
    """What :func:`trace_channels` found: layers in execution order, ties between atoms,
    partitions of grouped layers, frozen atoms (with the reason) and where atoms come from."""

    nodes: List[LayerNode]
    n_atoms: int
    ties: List[np.ndarray]  # each: atoms that must share one fate
    partitions: List[tuple]  # (layer name, "input"|"output", atoms, groups)
    frozen: Dict[int, str]  # atom -> why it cannot be removed
    source: Dict[int, str]  # atom -> name of the layer that creates it
    input_size: Sequence[int] = ()
    tensors: List[np.ndarray] = field(default_factory=list)  # atom lists of every conv/linear input and output

    def node(self, name: str) -> LayerNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def _producer_name(tensor) -> str:
    fn = getattr(tensor, "grad_fn", None)
    name = fn.name() if fn is not None else ""
    return name[:-len("GradNode")] if name.endswith("GradNode") else (name or "an operation without gradient")


class _Tracer:
    def __init__(self, model: nn.Layer):
        self.model = model
        self.info: Dict[int, _Info] = {}
        self.keep: list = []  # tensors kept alive so that their ids stay unique
        self.n_atoms = 0
        self.nodes: List[LayerNode] = []
        self.ties: List[np.ndarray] = []
        self.partitions: List[tuple] = []
        self.frozen: Dict[int, str] = {}
        self.source: Dict[int, str] = {}
        self.tensors: List[np.ndarray] = []
        self.names = {id(layer): name for name, layer in model.named_sublayers()}
        self.current: List[str] = []

    def new_atoms(self, n: int, owner: str) -> np.ndarray:
        atoms = np.arange(self.n_atoms, self.n_atoms + n)
        self.n_atoms += n
        for a in atoms:
            self.source[int(a)] = owner
        return atoms

    def put(self, tensor, info: _Info):
        self.keep.append(tensor)
        self.info[id(tensor)] = info
        return tensor

    def get(self, tensor, consumer: str) -> _Info:
        info = self.info.get(id(tensor))
        if info is None:
            raise UnmappedOperation(
                f"cannot prune {type(self.model).__name__}: the input of '{consumer}' comes from an operation the "
                f"channel analysis cannot map ('{_producer_name(tensor)}'); supported between layers: x + y, "
                "paddle.concat(axis=1), paddle.flatten(x, 1), channel shuffle")
        return info

    # --- layers
    def pre_hook(self, layer, inputs):
        name = self.names[id(layer)]
        if not inputs or not isinstance(inputs[0], paddle.Tensor):
            raise UnmappedOperation(f"cannot prune: layer '{name}' ({type(layer).__name__}) is called without a "
                                    "tensor input")
        self.current.append(name)
        self._in = self.get(inputs[0], name)

    def post_hook(self, layer, inputs, output):
        name = self.current.pop()
        info = self.get(inputs[0], name)
        self.put(output, self.map_layer(name, layer, info, inputs[0], output))
        return output

    def map_layer(self, name: str, layer: nn.Layer, info: _Info, x, y) -> _Info:
        if isinstance(layer, nn.Conv2D):
            if info.flat or layer._data_format != "NCHW":
                raise UnmappedOperation(f"cannot prune: conv '{name}' reads a {'flattened' if info.flat else 'NHWC'} "
                                        "tensor")
            g, cin, cout = layer._groups, layer._in_channels, layer._out_channels
            spatial = int(np.prod(y.shape[2:]))
            if g > 1 and g == cin:
                if cout != cin:
                    raise UnmappedOperation(f"cannot prune: '{name}' is a depthwise conv with channel multiplier "
                                            f"{cout // cin}; only multiplier 1 is mapped")
                self.nodes.append(LayerNode(name, "depthwise", layer, info.atoms, info.atoms, g, spatial))
                return _Info(info.atoms)
            out = self.new_atoms(cout, name)
            self.nodes.append(LayerNode(name, "conv", layer, info.atoms, out, g, spatial))
            self.tensors += [info.atoms, out]
            if g > 1:
                self.partitions += [(name, "input", info.atoms, g), (name, "output", out, g)]
            return _Info(out)
        if isinstance(layer, nn.Linear):
            if not info.flat and x.ndim != 2:
                raise UnmappedOperation(f"cannot prune: Linear '{name}' reads a {x.ndim}-D tensor; only [N, features] "
                                        "inputs are mapped")
            out = self.new_atoms(layer.weight.shape[1], name)
            self.nodes.append(LayerNode(name, "linear", layer, info.atoms, out, in_rep=info.rep))
            self.tensors += [info.atoms, out]
            return _Info(out, flat=True)
        if isinstance(layer, _NORMS):
            self.nodes.append(LayerNode(name, "norm", layer, info.atoms, info.atoms))
            return info
        if isinstance(layer, ChannelShuffle):
            g, c = layer.groups, len(info.atoms)
            if g > 1:
                grid = info.atoms.reshape(g, c // g)  # row i: input group i; column j lands at j*g..j*g+g-1
                self.ties += [grid[:, j].copy() for j in range(c // g)]
                return _Info(grid.T.reshape(-1).copy())
            return info
        if isinstance(layer, LocalResponseNorm) or isinstance(layer, nn.LocalResponseNorm):
            for a in info.atoms:
                self.frozen.setdefault(int(a), f"feeds the local response norm '{name}', which mixes neighbouring "
                                               "channels")
            return info
        if isinstance(layer, nn.Flatten):
            return self.flatten(name, info, x, layer.start_axis, layer.stop_axis)
        if isinstance(layer, _ELEMENTWISE) or (isinstance(layer, nn.PReLU) and layer._num_parameters == 1):
            return info
        raise UnmappedOperation(f"cannot prune: the channel analysis cannot map layer '{name}' "
                                f"({type(layer).__name__}); mapped: Conv2D, Linear, BatchNorm, ChannelShuffle, "
                                "LocalResponseNorm, Flatten, element-wise activations, dropout and pooling")

    def flatten(self, where: str, info: _Info, x, start, stop) -> _Info:
        if info.flat:
            return info
        stop = stop if stop >= 0 else x.ndim + stop
        if start != 1 or stop != x.ndim - 1:
            raise UnmappedOperation(f"cannot prune: '{where}' flattens axes {start}..{stop} of a {x.ndim}-D map; only "
                                    "flatten(x, 1) is mapped")
        return _Info(info.atoms, rep=int(np.prod(x.shape[2:])), flat=True)

    # --- functional ops
    @contextlib.contextmanager
    def patched(self):
        add, tensor_add, concat, flatten = paddle.add, paddle.Tensor.__add__, paddle.concat, paddle.flatten

        def where():
            return self.current[-1] if self.current else type(self.model).__name__

        def traced_add(x, y, *args, **kwargs):
            out = (tensor_add if traced_add.method else add)(x, y, *args, **kwargs)
            if not (isinstance(x, paddle.Tensor) and isinstance(y, paddle.Tensor)):
                if isinstance(x, paddle.Tensor) and id(x) in self.info:
                    self.put(out, self.info[id(x)])  # tensor + scalar keeps the channels
                return out
            if id(x) not in self.info or id(y) not in self.info:
                return out  # not a traced tensor (Paddle's own internals); a consumer would fail
            a, b = self.info[id(x)], self.info[id(y)]
            if len(a.atoms) != len(b.atoms) or a.rep != b.rep:
                raise UnmappedOperation(f"cannot prune: '{where()}' adds tensors of {len(a.atoms)} and "
                                        f"{len(b.atoms)} channels (broadcasting over channels is not mapped)")
            self.ties += [np.array([p, q]) for p, q in zip(a.atoms, b.atoms) if p != q]
            return self.put(out, a)

        def method_add(x, y):
            traced_add.method = True
            try:
                return traced_add(x, y)
            finally:
                traced_add.method = False

        def function_add(x, y, name=None):
            traced_add.method = False
            return traced_add(x, y, name=name)

        traced_add.method = False

        def traced_concat(xs, axis=0, name=None):
            out = concat(xs, axis=axis, name=name)
            known = [id(x) in self.info for x in xs]
            if not any(known):
                return out
            if not all(known):
                missing = next(x for x in xs if id(x) not in self.info)
                raise UnmappedOperation(f"cannot prune: '{where()}' concatenates a tensor from an operation the "
                                        f"channel analysis cannot map ('{_producer_name(missing)}')")
            axis = int(axis) if not isinstance(axis, paddle.Tensor) else int(axis.item())
            if axis < 0:
                axis += xs[0].ndim
            infos = [self.info[id(x)] for x in xs]
            if axis != 1 or any(i.flat for i in infos):
                raise UnmappedOperation(f"cannot prune: '{where()}' concatenates along axis {axis}; only channel "
                                        "concatenation of maps (axis 1) is mapped")
            return self.put(out, _Info(np.concatenate([i.atoms for i in infos])))

        def traced_flatten(x, start_axis=0, stop_axis=-1, name=None):
            out = flatten(x, start_axis, stop_axis, name)
            if id(x) in self.info:
                self.put(out, self.flatten(where(), self.info[id(x)], x, start_axis, stop_axis))
            return out

        paddle.add, paddle.Tensor.__add__, paddle.concat, paddle.flatten = (function_add, method_add, traced_concat,
                                                                           traced_flatten)
        try:
            yield
        finally:
            paddle.add, paddle.Tensor.__add__, paddle.concat, paddle.flatten = add, tensor_add, concat, flatten


def trace_channels(model: nn.Layer, input_size: Sequence[int] = (3, 224, 224)) -> ChannelGraph:
    """Trace one forward pass of ``model`` (batch 1, eval mode) and return its channel graph.

    Args:
        model (nn.Layer): the model; it is not changed.
        input_size (sequence of int): C, H, W of the traced input. Default: (3, 224, 224).

    Raises:
        UnmappedOperation: a layer or operation the analysis cannot map, by name.
    """
    tracer = _Tracer(model)
    handles = []
    for name, layer in model.named_sublayers():
        if not layer.sublayers() or isinstance(layer, (ChannelShuffle, LocalResponseNorm)):
            handles.append(layer.register_forward_pre_hook(tracer.pre_hook))
            handles.append(layer.register_forward_post_hook(tracer.post_hook))
    was_training = model.training
    model.eval()
    try:
        x = paddle.randn([1, *input_size])
        tracer.put(x, _Info(tracer.new_atoms(input_size[0], "<input>")))
        with tracer.patched():
            y = model(x)
        for a in tracer.info[id(x)].atoms:
            tracer.frozen[int(a)] = "is an input channel of the model"
        out = tracer.get(y, "the model's output")
        for a in out.atoms:
            tracer.frozen.setdefault(int(a), "is an output of the model")
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train()
    return ChannelGraph(tracer.nodes, tracer.n_atoms, tracer.ties, tracer.partitions, tracer.frozen, tracer.source,
                        tuple(input_size), tracer.tensors)
