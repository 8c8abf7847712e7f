"""The bottom layer: helpers with no knowledge of models, data or training.

``fileio`` (atomic writes, deferred signals), ``runtime`` (device and CPU threads),
``weights`` (reading weight files, loading them into a model), ``timing`` (interleaved
timing with medians), ``params`` (parameter counts) and ``cli`` (the tools' shared
arguments and one-line errors). Nothing here imports another ppzoo package.
"""
