"""Factorised replacements of ``Linear`` and ``Conv2D`` layers, built from plain Paddle layers.

Each method turns one layer into an :class:`Factorized` (an ``nn.Sequential`` of plain
``Linear``/``Conv2D`` layers, so it trains, exports and is counted by ``ppzoo.analysis``
like any other layer) and knows, in closed form, its parameters and MAdds:

* ``svd`` -- truncated SVD. ``Linear(in, out)`` -> ``Linear(in, r)`` + ``Linear(r, out)``
  (Denton et al., arXiv 1404.0736, Sec. 3.2; Xue et al., Interspeech 2013); a 1x1 conv
  -> two 1x1 convs (C -> r -> N), per group for grouped convs. Given the statistics of the
  layer's outputs on calibration images, the same structure is fitted to the responses
  instead of the weights (Zhang et al., arXiv 1505.06798, Sec. 3.1, the linear case):
  ``y' = P P^T (y - m) + m`` with ``P`` the top-r eigenvectors of the responses' covariance
  and ``m`` their mean (for a layer without bias: the uncentred second moment and m = 0, so
  no bias is added), the rank-r map closest to the layer on those images.
* ``spatial_svd`` -- Jaderberg, Vedaldi and Zisserman, BMVC 2014 (arXiv 1405.3866),
  Sec. 2.2 "scheme 2": a k_h x k_w conv -> a k_h x 1 conv with K outputs then a 1 x k_w
  conv, from the SVD of the kernel rearranged as a (C k_h) x (N k_w) matrix (the
  closed-form solution of their Sec. 3.2 when the data term is the filters themselves).
* ``tucker2`` -- Kim et al., arXiv 1511.06530, Sec. 3.1, Eq. 5-7: 1x1 (C -> R1), k x k
  (R1 -> R2), 1x1 (R2 -> N), from a Tucker decomposition of modes 0 and 1 of the kernel
  (TensorLy's ``partial_tucker``, HOOI initialised by HOSVD).
* ``cp`` -- Lebedev et al., arXiv 1412.6553, Sec. 3, Eq. 4-6: 1x1 (C -> R), k_h x 1
  depthwise, 1 x k_w depthwise, 1x1 (R -> N), from a rank-R CP decomposition of the
  kernel (TensorLy's ``parafac``: ALS, where the paper used non-linear least squares).

Grouped convolutions are factorised group by group: every factor becomes a grouped conv with
the same ``groups``, which is exact at full rank. Depthwise convolutions (one input channel
per group) have nothing to factor across channels: ``svd``, ``tucker2`` and ``cp`` skip
them with that reason; ``spatial_svd`` factorises their k x k kernels.
"""
import functools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import paddle.nn as nn

__all__ = ["Factorized", "NotFactorizable", "METHODS", "conv_geometry", "Geometry"]


class NotFactorizable(Exception):
    """This method cannot factor this layer (the message says why); the layer is kept."""


class Factorized(nn.Sequential):
    """A factorised layer: plain ``Conv2D``/``Linear`` layers applied in sequence.

    Attributes:
        method (str): the method that made it (``svd``, ``spatial_svd``, ``tucker2``, ``cp``).
        ranks (list of int): its ranks (``[r]``, or ``[R1, R2]`` for Tucker-2).
    """

    def __init__(self, method: str, ranks: Sequence[int], *layers: nn.Layer):
        super().__init__(*layers)
        self.method = method
        self.ranks = [int(r) for r in ranks]

    def extra_repr(self):
        return f"method={self.method}, ranks={self.ranks}"


@dataclass(frozen=True)
class Geometry:
    """What a factorisation needs to know of a ``Conv2D``."""

    cin: int
    cout: int
    groups: int
    kh: int
    kw: int
    stride: Tuple[int, int]
    dilation: Tuple[int, int]
    padding: Tuple[int, int, int, int]  # top, bottom, left, right
    bias: bool

    @property
    def cin_g(self) -> int:
        return self.cin // self.groups

    @property
    def cout_g(self) -> int:
        return self.cout // self.groups

    @property
    def depthwise(self) -> bool:
        return self.cin_g == 1 and self.groups > 1


def conv_geometry(conv: nn.Conv2D) -> Geometry:
    """Read a ``Conv2D``'s shape, or raise :class:`NotFactorizable` for layouts this module
    does not factor (NHWC, non-zero padding modes, ``padding="SAME"``)."""
    if conv._data_format != "NCHW":
        raise NotFactorizable(f"data format {conv._data_format} (only NCHW is factorised)")
    if conv._padding_mode != "zeros":
        raise NotFactorizable(f"padding mode {conv._padding_mode!r} (only zero padding is factorised)")
    if conv._padding_algorithm == "SAME":
        raise NotFactorizable("padding='SAME' (its split between the factors depends on the input size)")
    pad = [int(p) for p in conv._updated_padding]
    pad = (pad[0], pad[0], pad[1], pad[1]) if len(pad) == 2 else tuple(pad)
    kh, kw = (int(k) for k in conv._kernel_size)
    return Geometry(int(conv._in_channels), int(conv._out_channels), int(conv._groups), kh, kw,
                    tuple(int(s) for s in conv._stride), tuple(int(d) for d in conv._dilation), pad,
                    conv.bias is not None)


def _conv(cin, cout, kernel, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, bias=False):
    return nn.Conv2D(cin, cout, kernel, stride=list(stride), padding=list(padding), dilation=list(dilation),
                     groups=groups, bias_attr=None if bias else False)


def _set(param, value: np.ndarray) -> None:
    param.set_value(np.ascontiguousarray(value, dtype="float32").reshape(param.shape))


def _group_blocks(weight: np.ndarray, groups: int) -> List[np.ndarray]:
    """A conv weight [N, C/g, kh, kw] as its g blocks [N/g, C/g, kh, kw]."""
    return np.split(weight, groups, axis=0)


def _truncated_svd(matrix: np.ndarray, rank: int):
    """``U_r sqrt(S_r)`` and ``sqrt(S_r) V_r^T`` (float64): the balanced factors of rank ``rank``."""
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    root = np.sqrt(s[:rank])
    return u[:, :rank] * root, root[:, None] * vt[:rank]


def _relative_error(original: np.ndarray, approx: np.ndarray) -> float:
    norm = float(np.linalg.norm(original))
    return float(np.linalg.norm(original - approx)) / norm if norm else 0.0


def _tensorly():
    try:
        import tensorly
        from tensorly.decomposition import parafac, partial_tucker
    except ImportError:
        raise ValueError("tucker2 and cp need TensorLy: pip install 'ppzoo[lowrank]' (or pip install tensorly)") \
            from None
    if tensorly.get_backend() != "numpy":
        tensorly.set_backend("numpy")
    return tensorly, partial_tucker, parafac


@contextmanager
def _contracted_mttkrp(tensorly):
    """TensorLy's ALS with its ``einsum`` tenalg backend and numpy's einsum on an optimal
    contraction path, for the duration of the block.

    ``parafac``'s default MTTKRP forms the Khatri-Rao product of all but one factor: for a
    512 x 512 x 3 x 3 kernel at rank 755, a 786,432 x 755 matrix (4.7 GB) per spatial-mode
    update. The ``einsum`` backend writes it as one contraction, which numpy evaluates
    pairwise through BLAS when given a path (``optimize="optimal"``): ~0.2 s instead of ~10 s
    per mode here, the same factors to 1e-11. Both switches are TensorLy's public API
    (``tenalg.backend_context``, ``register_backend_method``) and are undone on exit."""
    backend = type(tensorly.backend.BackendManager.current_backend())
    original = backend.__dict__.get("einsum")
    tensorly.register_backend_method("einsum", functools.partial(np.einsum, optimize="optimal"))
    try:
        with tensorly.tenalg.backend_context("einsum"):
            yield
    finally:
        if original is None:
            delattr(backend, "einsum")
        else:
            setattr(backend, "einsum", original)


class _Method:
    """One factorisation: which layers it takes, its full ranks, its structure, its weights."""

    name = ""
    n_ranks = 1

    def geometry(self, layer):
        """The layer's geometry, or raise NotFactorizable."""
        raise NotImplementedError

    def max_ranks(self, layer) -> List[int]:
        raise NotImplementedError

    def params(self, layer, ranks) -> int:
        """Parameters of the factorised layer (weights and bias), closed form."""
        raise NotImplementedError

    def madds(self, layer, ranks, in_shape, out_shape) -> int:
        """MAdds of the factorised layer for one input of ``in_shape`` (no batch), closed form."""
        raise NotImplementedError

    def build(self, layer, ranks) -> Factorized:
        """The factorised structure (weights as initialised)."""
        raise NotImplementedError

    def factorize(self, layer, ranks) -> Tuple[Factorized, float]:
        """The factorised layer with its weights, and the relative Frobenius error of the
        kernel it represents."""
        raise NotImplementedError

    def matrices(self, layer) -> List[np.ndarray]:
        """The matrices whose spectra choose the rank (per group; per mode for Tucker-2)."""
        raise NotImplementedError


class SVD(_Method):
    """Truncated SVD of a ``Linear`` weight or of a 1x1 conv's channel matrix."""

    name = "svd"

    def geometry(self, layer):
        if isinstance(layer, nn.Linear):
            return None
        if isinstance(layer, nn.Conv2D):
            g = conv_geometry(layer)
            if (g.kh, g.kw) != (1, 1):
                raise NotFactorizable(f"{g.kh}x{g.kw} conv (svd takes Linear and 1x1 convs; use spatial_svd, "
                                      "tucker2 or cp)")
            if g.depthwise:
                raise NotFactorizable("depthwise conv: one input channel per group leaves nothing to factor")
            return g
        raise NotFactorizable(f"{type(layer).__name__} (svd takes Linear and 1x1 Conv2D)")

    def max_ranks(self, layer):
        g = self.geometry(layer)
        if g is None:
            return [min(layer.weight.shape)]
        return [min(g.cin_g, g.cout_g)]

    def params(self, layer, ranks):
        (r,), g = ranks, self.geometry(layer)
        if g is None:
            n_in, n_out = layer.weight.shape
            return r * (n_in + n_out) + (n_out if layer.bias is not None else 0)
        return g.groups * r * (g.cin_g + g.cout_g) + (g.cout if g.bias else 0)

    def madds(self, layer, ranks, in_shape, out_shape):
        (r,), g = ranks, self.geometry(layer)
        if g is None:
            n_in, n_out = layer.weight.shape
            return int(np.prod(in_shape[:-1], dtype=np.int64)) * r * (n_in + n_out)
        hw = out_shape[1] * out_shape[2]
        return g.groups * r * hw * g.cin_g + g.cout * hw * r

    def matrices(self, layer):
        g = self.geometry(layer)
        w = layer.weight.numpy().astype("float64")
        if g is None:
            return [w]
        return [b.reshape(g.cout_g, g.cin_g) for b in _group_blocks(w, g.groups)]

    def build(self, layer, ranks):
        (r,), g = ranks, self.geometry(layer)
        if g is None:
            n_in, n_out = layer.weight.shape
            return Factorized(self.name, ranks, nn.Linear(n_in, r, bias_attr=False),
                              nn.Linear(r, n_out, bias_attr=None if layer.bias is not None else False))
        return Factorized(self.name, ranks,
                          _conv(g.cin, g.groups * r, 1, g.stride, g.padding, g.dilation, g.groups),
                          _conv(g.groups * r, g.cout, 1, groups=g.groups, bias=g.bias))

    def factorize(self, layer, ranks, responses=None):
        """``responses`` (optional): ``{"mean": [out], "moment": [out, out]}`` of the layer's
        outputs on calibration images (:func:`response_statistics`); then the factors fit
        the responses (module docstring) and the error returned is the relative error of
        the responses on those images."""
        if responses is not None:
            return self._fit_responses(layer, ranks, responses)
        (r,), g = ranks, self.geometry(layer)
        new = self.build(layer, ranks)
        first, second = new[0], new[1]
        if g is None:  # paddle's Linear weight is [in, out]: y = x W
            w = layer.weight.numpy().astype("float64")
            a, b = _truncated_svd(w, r)
            _set(first.weight, a)
            _set(second.weight, b)
            approx = a @ b
        else:  # per group: W_g [N/g, C/g] = (U sqrt S) (sqrt S V^T)
            blocks = self.matrices(layer)
            factors = [_truncated_svd(m, r) for m in blocks]
            _set(first.weight, np.concatenate([vt for _, vt in factors]))  # [g*r, C/g]
            _set(second.weight, np.concatenate([u for u, _ in factors]))  # [N, r]
            w = np.concatenate(blocks)
            approx = np.concatenate([u @ vt for u, vt in factors])
        if layer.bias is not None:
            _set(new[-1].bias, layer.bias.numpy())
        return new, _relative_error(w, approx)


    def _fit_responses(self, layer, ranks, responses):
        (r,), g = ranks, self.geometry(layer)
        new = self.build(layer, ranks)
        mean, moment = (np.asarray(responses[k], dtype="float64") for k in ("mean", "moment"))
        groups = 1 if g is None else g.groups
        w = layer.weight.numpy().astype("float64")
        w = w.T if g is None else w.reshape(g.cout, g.cin_g)  # [out, in per group], y = W x + b
        bias = layer.bias.numpy().astype("float64") if layer.bias is not None else None
        n = w.shape[0] // groups
        firsts, seconds, new_bias, kept, total = [], [], [], 0.0, 0.0
        for k in range(groups):
            rows = slice(k * n, (k + 1) * n)
            cov = moment[rows, rows] - (np.outer(mean[rows], mean[rows]) if bias is not None else 0.0)
            values, vectors = np.linalg.eigh((cov + cov.T) / 2)
            p = vectors[:, np.argsort(values)[::-1][:r]]  # [n, r], the top-r principal directions
            firsts.append(p.T @ w[rows])  # [r, in per group]
            seconds.append(p)
            if bias is not None:  # y' = P P^T (y - m) + m  =>  second layer's bias P P^T (b - m) + m
                new_bias.append(p @ (p.T @ (bias[rows] - mean[rows])) + mean[rows])
            kept += float(np.clip(values, 0, None)[np.argsort(values)[::-1][:r]].sum())
            total += float(np.clip(values, 0, None).sum())
        first, second = np.concatenate(firsts), np.concatenate(seconds)  # [g*r, in/g], [out, r]
        if g is None:  # Linear weights are [in, out]
            _set(new[0].weight, first.T)
            _set(new[1].weight, second.T)
        else:
            _set(new[0].weight, first)
            _set(new[1].weight, second)
        if bias is not None:
            _set(new[-1].bias, np.concatenate(new_bias))
        # E||y - y'||^2 / E||y - m||^2 on the calibration images: the variance the dropped directions held
        return new, float(np.sqrt(max(total - kept, 0.0) / total)) if total > 0 else 0.0


class SpatialSVD(_Method):
    """Jaderberg et al.'s scheme 2: k_h x 1 (C -> K) then 1 x k_w (K -> N)."""

    name = "spatial_svd"

    def geometry(self, layer):
        if not isinstance(layer, nn.Conv2D):
            raise NotFactorizable(f"{type(layer).__name__} (spatial_svd takes k x k Conv2D)")
        g = conv_geometry(layer)
        if g.kh == 1 or g.kw == 1:
            raise NotFactorizable(f"{g.kh}x{g.kw} kernel is already one-dimensional (use svd for 1x1)")
        return g

    def max_ranks(self, layer):
        g = self.geometry(layer)
        return [min(g.cin_g * g.kh, g.cout_g * g.kw)]

    def params(self, layer, ranks):
        (k,), g = ranks, self.geometry(layer)
        return g.groups * k * (g.cin_g * g.kh + g.cout_g * g.kw) + (g.cout if g.bias else 0)

    def madds(self, layer, ranks, in_shape, out_shape):
        (k,), g = ranks, self.geometry(layer)
        h_out, w_out, w_in = out_shape[1], out_shape[2], in_shape[2]
        w_mid = w_in  # the vertical conv neither pads nor strides horizontally
        return g.groups * k * h_out * w_mid * g.cin_g * g.kh + g.cout * h_out * w_out * k * g.kw

    def matrices(self, layer):
        g = self.geometry(layer)
        w = layer.weight.numpy().astype("float64")
        # M[(c, y), (n, x)] = W[n, c, y, x]
        return [b.transpose(1, 2, 0, 3).reshape(g.cin_g * g.kh, g.cout_g * g.kw) for b in _group_blocks(w, g.groups)]

    def build(self, layer, ranks):
        (k,), g = ranks, self.geometry(layer)
        t, b, left, right = g.padding
        return Factorized(self.name, ranks,
                          _conv(g.cin, g.groups * k, (g.kh, 1), (g.stride[0], 1), (t, b, 0, 0), (g.dilation[0], 1),
                                g.groups),
                          _conv(g.groups * k, g.cout, (1, g.kw), (1, g.stride[1]), (0, 0, left, right),
                                (1, g.dilation[1]), g.groups, bias=g.bias))

    def factorize(self, layer, ranks):
        (k,), g = ranks, self.geometry(layer)
        new = self.build(layer, ranks)
        vertical, horizontal, approx = [], [], []
        for m in self.matrices(layer):
            u, vt = _truncated_svd(m, k)  # u [C/g*kh, K], vt [K, N/g*kw]
            vertical.append(u.T.reshape(k, g.cin_g, g.kh, 1))
            horizontal.append(vt.reshape(k, g.cout_g, g.kw).transpose(1, 0, 2).reshape(g.cout_g, k, 1, g.kw))
            approx.append((u @ vt).reshape(g.cin_g, g.kh, g.cout_g, g.kw).transpose(2, 0, 1, 3))
        _set(new[0].weight, np.concatenate(vertical))
        _set(new[1].weight, np.concatenate(horizontal))
        if g.bias:
            _set(new[1].bias, layer.bias.numpy())
        return new, _relative_error(layer.weight.numpy().astype("float64"), np.concatenate(approx))


class Tucker2(_Method):
    """Kim et al.'s Tucker-2: 1x1 (C -> R1), k x k (R1 -> R2), 1x1 (R2 -> N)."""

    name = "tucker2"
    n_ranks = 2

    def geometry(self, layer):
        if not isinstance(layer, nn.Conv2D):
            raise NotFactorizable(f"{type(layer).__name__} (tucker2 takes k x k Conv2D)")
        g = conv_geometry(layer)
        if (g.kh, g.kw) == (1, 1):
            raise NotFactorizable("1x1 conv: Tucker-2 would only add a 1x1 layer (use svd)")
        if g.depthwise:
            raise NotFactorizable("depthwise conv: one input channel per group leaves nothing to factor "
                                  "(use spatial_svd)")
        return g

    def max_ranks(self, layer):
        g = self.geometry(layer)
        return [g.cin_g, g.cout_g]  # R1 (input side), R2 (output side)

    def params(self, layer, ranks):
        (r1, r2), g = ranks, self.geometry(layer)
        return g.groups * (g.cin_g * r1 + r1 * r2 * g.kh * g.kw + r2 * g.cout_g) + (g.cout if g.bias else 0)

    def madds(self, layer, ranks, in_shape, out_shape):
        (r1, r2), g = ranks, self.geometry(layer)
        hw_in, hw_out = in_shape[1] * in_shape[2], out_shape[1] * out_shape[2]
        return g.groups * (r1 * hw_in * g.cin_g + r2 * hw_out * r1 * g.kh * g.kw) + g.cout * hw_out * r2

    def matrices(self, layer):
        """Mode-1 (input channels, for R1) and mode-0 (output channels, for R2) unfoldings per group."""
        g = self.geometry(layer)
        w = layer.weight.numpy().astype("float64")
        blocks = _group_blocks(w, g.groups)
        return ([b.transpose(1, 0, 2, 3).reshape(g.cin_g, -1) for b in blocks],
                [b.reshape(g.cout_g, -1) for b in blocks])

    def build(self, layer, ranks):
        (r1, r2), g = ranks, self.geometry(layer)
        return Factorized(self.name, ranks,
                          _conv(g.cin, g.groups * r1, 1, groups=g.groups),
                          _conv(g.groups * r1, g.groups * r2, (g.kh, g.kw), g.stride, g.padding, g.dilation,
                                g.groups),
                          _conv(g.groups * r2, g.cout, 1, groups=g.groups, bias=g.bias))

    def factorize(self, layer, ranks):
        _, partial_tucker, _ = _tensorly()
        (r1, r2), g = ranks, self.geometry(layer)
        new = self.build(layer, ranks)
        w = layer.weight.numpy().astype("float64")
        first, cores, last, approx = [], [], [], []
        for block in _group_blocks(w, g.groups):
            out = partial_tucker(block, rank=[r2, r1], modes=[0, 1], init="svd", n_iter_max=100, tol=1e-8)
            core, (u_out, u_in) = out[0] if isinstance(out[0], tuple) else out  # tensorly >= 0.9 adds the errors
            first.append(u_in.T.reshape(r1, g.cin_g, 1, 1))  # C/g -> R1
            cores.append(core)  # [R2, R1, kh, kw]
            last.append(u_out.reshape(g.cout_g, r2, 1, 1))  # R2 -> N/g
            approx.append(np.einsum("ab,cd,bdyx->acyx", u_out, u_in, core))
        _set(new[0].weight, np.concatenate(first))
        _set(new[1].weight, np.concatenate(cores))
        _set(new[2].weight, np.concatenate(last))
        if g.bias:
            _set(new[2].bias, layer.bias.numpy())
        return new, _relative_error(w, np.concatenate(approx))


class CP(_Method):
    """Lebedev et al.'s CP: 1x1 (C -> R), k_h x 1 and 1 x k_w depthwise, 1x1 (R -> N)."""

    name = "cp"

    def geometry(self, layer):
        if not isinstance(layer, nn.Conv2D):
            raise NotFactorizable(f"{type(layer).__name__} (cp takes k x k Conv2D)")
        g = conv_geometry(layer)
        if g.kh == 1 or g.kw == 1:
            raise NotFactorizable(f"{g.kh}x{g.kw} kernel: CP's two depthwise factors need a 2-D kernel "
                                  "(use svd for 1x1)")
        if g.depthwise:
            raise NotFactorizable("depthwise conv: one input channel per group leaves nothing to factor "
                                  "(use spatial_svd)")
        return g

    def max_ranks(self, layer):
        g = self.geometry(layer)
        # the generic upper bound of a CP rank: the product of all sizes but the largest
        return [g.cout_g * g.cin_g * g.kh * g.kw // max(g.cout_g, g.cin_g, g.kh, g.kw)]

    def params(self, layer, ranks):
        (r,), g = ranks, self.geometry(layer)
        return g.groups * r * (g.cin_g + g.kh + g.kw + g.cout_g) + (g.cout if g.bias else 0)

    def madds(self, layer, ranks, in_shape, out_shape):
        (r,), g = ranks, self.geometry(layer)
        hw_in, h_out, w_out, w_in = in_shape[1] * in_shape[2], out_shape[1], out_shape[2], in_shape[2]
        return (g.groups * r * (hw_in * g.cin_g + h_out * w_in * g.kh + h_out * w_out * g.kw)
                + g.cout * h_out * w_out * r)

    def matrices(self, layer):
        g = self.geometry(layer)
        return [b.reshape(g.cout_g, -1) for b in _group_blocks(layer.weight.numpy().astype("float64"), g.groups)]

    def build(self, layer, ranks):
        (r,), g = ranks, self.geometry(layer)
        t, b, left, right = g.padding
        gr = g.groups * r
        return Factorized(self.name, ranks,
                          _conv(g.cin, gr, 1, groups=g.groups),
                          _conv(gr, gr, (g.kh, 1), (g.stride[0], 1), (t, b, 0, 0), (g.dilation[0], 1), gr),
                          _conv(gr, gr, (1, g.kw), (1, g.stride[1]), (0, 0, left, right), (1, g.dilation[1]), gr),
                          _conv(gr, g.cout, 1, groups=g.groups, bias=g.bias))

    def factorize(self, layer, ranks, n_iter_max: int = 300):
        tensorly, _, parafac = _tensorly()
        (r,), g = ranks, self.geometry(layer)
        new = self.build(layer, ranks)
        w = layer.weight.numpy().astype("float64")
        parts = {k: [] for k in ("in", "v", "h", "out")}
        approx = []
        for block in _group_blocks(w, g.groups):
            with warnings.catch_warnings(), _contracted_mttkrp(tensorly):
                # the SVD init fills ranks above a mode's size randomly, as wanted
                warnings.filterwarnings("ignore", message="Trying to compute SVD with n_eigenvecs")
                weights, (a, b, y, x) = parafac(block, rank=r, init="svd", n_iter_max=n_iter_max, tol=1e-9,
                                                random_state=0)
            a = a * weights  # absorb the component weights, then balance the four factors' norms
            norms = np.stack([np.linalg.norm(f, axis=0) for f in (a, b, y, x)])  # [4, R]
            norms = np.where(norms == 0, 1.0, norms)
            target = np.prod(norms, axis=0) ** 0.25
            a, b, y, x = (f * (target / n) for f, n in zip((a, b, y, x), norms))
            parts["in"].append(b.T.reshape(r, g.cin_g, 1, 1))
            parts["v"].append(y.T.reshape(r, 1, g.kh, 1))
            parts["h"].append(x.T.reshape(r, 1, 1, g.kw))
            parts["out"].append(a.reshape(g.cout_g, r, 1, 1))
            approx.append(np.einsum("nr,cr,yr,xr->ncyx", a, b, y, x))
        for i, key in enumerate(("in", "v", "h", "out")):
            _set(new[i].weight, np.concatenate(parts[key]))
        if g.bias:
            _set(new[3].bias, layer.bias.numpy())
        return new, _relative_error(w, np.concatenate(approx))


METHODS = {m.name: m for m in (SVD(), SpatialSVD(), Tucker2(), CP())}

