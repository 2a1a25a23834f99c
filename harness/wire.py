"""Messages between the evaluator (trusted) and the worker that runs the submission (untrusted).

A message is a JSON header and raw byte blobs: ``<4-byte length><header JSON><blob>...``, the header
listing the blob sizes. Nothing from the worker is ever unpickled: tensors travel as dtype, shape and raw
bytes, so a hostile worker can send wrong numbers but never code. Every size is capped.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
from collections.abc import Sequence
from typing import Any

MAX_HEADER = 1024 * 1024
MAX_BLOBS = 1024
MAX_BLOB_BYTES = 4 * 1024**3
PIPE_BYTES = 1 << 20
Blob = bytes | bytearray | memoryview


class WireError(Exception):
    """The peer closed the channel or sent something malformed."""


def widen(fd: int) -> None:
    """Give a pipe a 1 MiB buffer (Linux's default limit for any process) instead of 64 KiB: an output of
    hundreds of MiB then takes a sixteenth of the system calls and context switches to cross."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # a lower pipe-max-size: the default buffer works, only slower


def _read_exact(fd: int, size: int) -> bytearray:
    """``size`` bytes read straight into one buffer (no chunks to join: a blob can be GiBs)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        got = os.readv(fd, [view[done:]])
        if not got:
            raise WireError("the channel was closed")
        done += got
    return buffer


def _write_all(fd: int, data: Blob) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def send(fd: int, header: dict[str, Any], blobs: Sequence[Blob] | None = None) -> None:
    blobs = blobs or []
    raw = json.dumps(header | {"blobs": [memoryview(b).nbytes for b in blobs]}).encode()
    _write_all(fd, struct.pack(">I", len(raw)) + raw)
    for blob in blobs:
        _write_all(fd, blob)


def receive(fd: int) -> tuple[dict[str, Any], list[bytearray]]:
    (size,) = struct.unpack(">I", _read_exact(fd, 4))
    if size > MAX_HEADER:
        raise WireError(f"header of {size} bytes is over the limit")
    try:
        header = json.loads(_read_exact(fd, size))
    except ValueError as exc:
        raise WireError(f"header is not JSON: {exc}") from exc
    sizes = header.get("blobs") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or len(sizes) > MAX_BLOBS:
        raise WireError("header has no valid blob list")
    if not all(isinstance(n, int) and 0 <= n <= MAX_BLOB_BYTES for n in sizes):
        raise WireError("blob size out of range")
    return header, [_read_exact(fd, n) for n in sizes]


# -- values (a submission's output) -------------------------------------------------------------------


def encode(value: Any, blobs: list[Blob]) -> Any:
    """A JSON tree for ``value`` (tensors, tuples, lists, dicts of str, scalars), tensor bytes in blobs."""
    import torch

    if type(value) is torch.Tensor:
        flat = value.detach().contiguous().cpu().reshape(-1)
        # the host copy's own memory, sent as it is: no second copy of a large output
        blobs.append(flat.view(torch.uint8).numpy().data if flat.numel() else b"")
        dtype = str(value.dtype).removeprefix("torch.")
        return {"t": "tensor", "dtype": dtype, "shape": list(value.shape), "device": value.device.type,
                "blob": len(blobs) - 1}  # fmt: skip
    if isinstance(value, torch.Tensor):
        # a subclass could compute lazily (when the checker reads it, outside the timed region)
        raise TypeError(f"outputs must be plain torch.Tensor, not the subclass {type(value).__name__}")
    if type(value) in (tuple, list):
        return {"t": type(value).__name__, "items": [encode(v, blobs) for v in value]}
    if type(value) is dict and all(type(k) is str for k in value):
        return {"t": "dict", "items": {k: encode(v, blobs) for k, v in value.items()}}
    if value is None or type(value) in (bool, int, float, str):
        return {"t": "scalar", "v": value}
    raise TypeError(f"cannot return a {type(value).__name__}: use torch.Tensor (or a tuple/list of them)")


def decode(tree: Any, blobs: Sequence[Blob], device: Any) -> Any:
    """The inverse of encode; tensors are placed on ``device`` when they were on a GPU."""
    import torch

    if not isinstance(tree, dict):
        raise WireError("malformed value")
    kind = tree.get("t")
    if kind == "tensor":
        dtype = getattr(torch, str(tree.get("dtype")), None)
        shape = tree.get("shape")
        index = tree.get("blob")
        if not isinstance(dtype, torch.dtype) or not isinstance(shape, list) or not isinstance(index, int):
            raise WireError("malformed tensor")
        if not all(isinstance(n, int) and n >= 0 for n in shape) or not 0 <= index < len(blobs):
            raise WireError("malformed tensor shape or blob")
        data = blobs[index]
        if not data:
            tensor = torch.empty(shape, dtype=dtype)
        else:
            writable = data if isinstance(data, bytearray) else bytearray(data)  # received ones are
            tensor = torch.frombuffer(writable, dtype=torch.uint8).view(dtype)
            if tensor.numel() != _numel(shape):
                raise WireError("tensor bytes do not match its shape")
            tensor = tensor.reshape(shape)
        return tensor.to(device) if tree.get("device") != "cpu" else tensor
    if kind in ("tuple", "list"):
        items = [decode(v, blobs, device) for v in tree.get("items", [])]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {str(k): decode(v, blobs, device) for k, v in dict(tree.get("items", {})).items()}
    if kind == "scalar":
        return tree.get("v")
    raise WireError(f"unknown value kind {kind!r}")


def _numel(shape: list[int]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total
