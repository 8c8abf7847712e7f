"""Low-rank factorisation and product quantization of weights (``Slim.lowrank``).

* :func:`decompose`: ``svd`` (Linear, 1x1 conv), ``spatial_svd`` (k x 1 then 1 x k),
  ``tucker2`` and ``cp`` (k x k convs) into plain ``Conv2D``/``Linear`` layers
  (:mod:`.factorize`), ranks by value, parameter ratio, kept energy or EVBMF (:mod:`.rank`),
  layers by name pattern or an automatic, measured plan; ``svd`` fits the weights, or with
  calibration images the layer's responses (:func:`response_statistics`);
* :func:`product_quantize`: k-means codebooks per sub-space, uint8 codes, error-corrected on
  calibration images when given (:func:`pq_refine`); :func:`save_pq` /
  :func:`load_pq` write and read the compact file (:mod:`.pq`);
* the ``lowrank`` model pass (rebuilds a factorised model from its ``.arch.json``) and the
  ``Slim.lowrank`` stage (:mod:`.stage`).

``tucker2`` and ``cp`` use TensorLy (extra ``lowrank``: ``pip install 'ppzoo[lowrank]'``).
"""
from ..base import register_pass, register_stage
from .decompose import PASS_NAME, LayerReport, LowRankReport, choose_ranks, decompose, layer_shapes, rebuild, \
    response_statistics, select_layers
from .factorize import METHODS, Factorized, NotFactorizable
from .pq import PQ_SUFFIX, PQReport, input_moments, load_pq, pq_bytes, pq_decode, pq_encode, pq_refine, \
    pq_response_error, product_quantize, save_pq
from .rank import energy_rank, evbmf_rank, ratio_rank
from .stage import check_lowrank, run_lowrank

__all__ = ["decompose", "rebuild", "product_quantize", "save_pq", "load_pq", "pq_encode", "pq_decode", "pq_bytes",
           "choose_ranks", "select_layers", "layer_shapes", "energy_rank", "evbmf_rank", "ratio_rank", "Factorized",
           "NotFactorizable", "METHODS", "LayerReport", "LowRankReport", "PQReport", "PQ_SUFFIX", "check_lowrank",
           "run_lowrank", "response_statistics", "pq_refine", "pq_response_error", "input_moments"]

register_pass(PASS_NAME, rebuild)
_DOC = "low-rank factorisation (svd, spatial_svd, tucker2, cp) or product quantization (pq) of weights"
register_stage("lowrank", check_lowrank, order=30, run=run_lowrank, doc=_DOC)
