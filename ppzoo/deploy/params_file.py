"""Read and write Paddle's combined parameter files (``*.pdiparams``) without a program.

A ``.pdiparams`` file written by ``paddle.jit.save`` (PIR or legacy format) is the
concatenation of the program's persistable tensors, in the program's order, each
serialised as a ``DenseTensor``: ``uint32`` version, ``uint64`` LoD level (+ LoD data),
``uint32`` tensor version, ``int32`` size of a ``TensorDesc`` protobuf message
(``data_type = 1`` enum, ``dims = 2`` repeated int64), the message, then the raw data.
Names are not stored: the program pairs tensors with parameters by position.

This is what ``--weights-dtype float16`` needs: Paddle has no CPU float16 kernels, so the
program stays float32 and only the file stores halves (:func:`cast_file`); the predictor
widens them back to float32 before loading (:func:`widen_to_float32`).
"""
import struct
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

__all__ = ["StoredTensor", "read_params", "write_params", "cast_file", "widen_to_float32", "file_dtypes"]

# framework.proto VarType.Type -> numpy dtype
_DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32, 6: np.float64,
           20: np.uint8, 21: np.int8}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


@dataclass
class StoredTensor:
    """One tensor of a parameter file, with the framing it was stored with."""

    array: np.ndarray
    lod: List[bytes]
    version: int = 0
    tensor_version: int = 0


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _put_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 in two's complement, as protobuf writes negative int64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _parse_desc(desc: bytes, path: str) -> Tuple[int, List[int]]:
    pos, dtype, dims = 0, None, []
    while pos < len(desc):
        key, pos = _varint(desc, pos)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, pos = _varint(desc, pos)
        elif field == 2 and wire == 0:
            dim, pos = _varint(desc, pos)
            dims.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
        elif field == 2 and wire == 2:  # packed
            length, pos = _varint(desc, pos)
            end = pos + length
            while pos < end:
                dim, pos = _varint(desc, pos)
                dims.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
        else:
            raise ValueError(f"{path}: unexpected field {field} in a tensor description (not a Paddle parameter file)")
    if dtype not in _DTYPES:
        raise ValueError(f"{path}: tensor data type {dtype} is not supported here")
    return dtype, dims


def read_params(path: str) -> List[StoredTensor]:
    """Every tensor of a ``.pdiparams`` file, in file order."""
    with open(path, "rb") as f:
        data = f.read()
    pos, out = 0, []
    try:
        while pos < len(data):
            version, lod_level = struct.unpack_from("<IQ", data, pos)
            pos += 12
            lod = []
            for _ in range(lod_level):
                (size,) = struct.unpack_from("<Q", data, pos)
                lod.append(data[pos + 8:pos + 8 + size])
                pos += 8 + size
            tensor_version, desc_size = struct.unpack_from("<Ii", data, pos)
            pos += 8
            dtype, dims = _parse_desc(data[pos:pos + desc_size], path)
            pos += desc_size
            count = int(np.prod(dims)) if dims else 1
            nbytes = count * np.dtype(_DTYPES[dtype]).itemsize
            if pos + nbytes > len(data):
                raise ValueError("truncated")
            array = np.frombuffer(data, dtype=_DTYPES[dtype], count=count, offset=pos).reshape(dims)
            pos += nbytes
            out.append(StoredTensor(array, lod, version, tensor_version))
    except (struct.error, IndexError, ValueError) as e:
        if str(e).startswith(path):
            raise
        raise ValueError(f"{path} is not a readable Paddle parameter file ({e} at byte {pos})") from None
    return out


def write_params(path: str, tensors: List[StoredTensor]) -> None:
    """Write ``tensors`` in the format :func:`read_params` reads (and Paddle loads)."""
    with open(path, "wb") as f:
        for t in tensors:
            array = np.ascontiguousarray(t.array)
            f.write(struct.pack("<IQ", t.version, len(t.lod)))
            for level in t.lod:
                f.write(struct.pack("<Q", len(level)) + level)
            desc = b"\x08" + _put_varint(_CODES[array.dtype]) + b"".join(b"\x10" + _put_varint(int(d))
                                                                          for d in array.shape)
            f.write(struct.pack("<Ii", t.tensor_version, len(desc)) + desc)
            f.write(array.tobytes())


def file_dtypes(path: str) -> dict:
    """``{dtype name: number of tensors}`` of a parameter file."""
    counts = {}
    for t in read_params(path):
        counts[t.array.dtype.name] = counts.get(t.array.dtype.name, 0) + 1
    return counts


def cast_file(src: str, dst: str, source: str = "float32", target: str = "float16") -> int:
    """Copy ``src`` to ``dst`` with every ``source`` tensor stored as ``target`` (others,
    e.g. int8 weights of a quantized model, unchanged); returns how many were cast."""
    tensors = read_params(src)
    cast = 0
    for t in tensors:
        if t.array.dtype == np.dtype(source):
            t.array = t.array.astype(target)
            cast += 1
    write_params(dst, tensors)
    return cast


def widen_to_float32(src: str, dst: str) -> int:
    """Copy ``src`` to ``dst`` with float16 tensors widened to float32 (what the float32
    program expects)."""
    return cast_file(src, dst, "float16", "float32")
