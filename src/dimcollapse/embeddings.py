"""Reading embeddings files (.npy .npz .pt/.pth .safetensors) as row chunks, with clear errors.

Every reader validates before any computation: the file exists, its format is known, the chosen
array is numeric, 2-D (N x d) and has at least two rows. ``.npy`` files are memory-mapped and
``.safetensors`` read slice by slice, so a file larger than memory streams in O(chunk) memory.
``.pt`` files load with ``weights_only=True``: a file that needs arbitrary unpickling is refused.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib import format as npy_format
from safetensors import SafetensorError, safe_open

from dimcollapse.errors import UsageError
from dimcollapse.fileio import file_kind, load_torch_weights_only

#: File suffixes :func:`open_embeddings` reads.
SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".safetensors")


@dataclass
class EmbeddingsFile:
    """A validated (N, d) array in a file, read in row chunks by :meth:`chunks`."""

    path: Path
    key: str | None
    shape: tuple[int, int]
    _array: Any  # np.ndarray (maybe memory-mapped), torch.Tensor, or a safetensors slice

    @property
    def n(self) -> int:
        return self.shape[0]

    @property
    def dim(self) -> int:
        return self.shape[1]

    def chunks(self, rows: int = 65536) -> Iterator[torch.Tensor]:
        """Yield (<= rows, d) float tensors, in file order (float16/bf16 are upcast to float32)."""
        for start in range(0, self.n, rows):
            block = self._array[start : start + rows]
            t = block if isinstance(block, torch.Tensor) else torch.from_numpy(np.array(block))
            if t.dtype in (torch.float16, torch.bfloat16) or not t.is_floating_point():
                t = t.to(torch.float32)
            yield t

    def read(self) -> torch.Tensor:
        """The whole (N, d) array as one tensor."""
        return torch.cat(list(self.chunks()), dim=0)


def _pick(arrays: dict[str, Any], key: str | None, path: Path) -> tuple[str, Any]:
    if key is not None:
        if key not in arrays:
            have = ", ".join(sorted(arrays)) or "none"
            raise UsageError(f"{path}: no array named {key!r}; the keys there are: {have}")
        return key, arrays[key]
    if len(arrays) == 1:
        return next(iter(arrays.items()))
    if not arrays:
        raise UsageError(f"{path}: holds no arrays")
    have = ", ".join(sorted(arrays))
    raise UsageError(f"{path}: holds several arrays; pick one with --key (keys: {have})")


def _validate(path: Path, key: str | None, arr: Any, shape: tuple[int, ...], dtype: Any) -> None:
    where = f"{path}" + (f" [{key}]" if key else "")
    kind = str(dtype)
    numeric = any(s in kind for s in ("float", "int", "bfloat")) and "complex" not in kind
    if not numeric:
        raise UsageError(f"{where}: embeddings must be real numbers, got dtype {kind}")
    if len(shape) != 2:
        raise UsageError(f"{where}: embeddings must be 2-D (N x d), got shape {tuple(shape)}")
    if shape[0] < 2:
        raise UsageError(f"{where}: need at least 2 rows for a covariance, got {shape[0]}")
    if shape[1] < 1:
        raise UsageError(f"{where}: embeddings have no columns")


def _open_npy(path: Path) -> Any:
    kind = file_kind(path)
    if kind == "empty":
        raise UsageError(f"{path}: empty file (0 bytes), not a .npy array")
    if kind != "npy":  # np.load would call any other file "pickled (object) data"
        raise UsageError(
            f"{path}: not a .npy file (no NumPy header; is it text or another format?)"
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        _check_npy_length(path)
        raise UsageError(f"{path}: not a numeric .npy array ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise UsageError(f"{path}: not a readable .npy file ({exc})") from exc
    return array


def _check_npy_length(path: Path) -> None:
    """A .npy file whose header promises more data than the file holds (a copy or download
    cut short) is said to be truncated, not 'not numeric'."""
    try:
        with open(path, "rb") as fh:
            version = npy_format.read_magic(fh)
            read_header = (
                npy_format.read_array_header_1_0
                if version == (1, 0)
                else npy_format.read_array_header_2_0
            )
            shape, _order, dtype = read_header(fh)
            header_end = fh.tell()
    except (ValueError, OSError, EOFError):
        return
    expected = header_end + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        dims = " x ".join(str(d) for d in shape)
        raise UsageError(
            f"{path}: truncated: the header promises {dims} {dtype} ({expected:,} bytes), "
            f"the file has {size:,}"
        )


def _open_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path}: not a readable .npz file ({exc})") from exc


def _open_pt(path: Path) -> Any:
    obj = load_torch_weights_only(path)
    if isinstance(obj, torch.Tensor):
        return {"": obj}
    if isinstance(obj, dict):
        return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    raise UsageError(
        f"{path}: holds a {type(obj).__name__}, expected a tensor or a dict of tensors"
    )


def open_embeddings(path: str | Path, key: str | None = None) -> EmbeddingsFile:
    """Open and validate an (N, d) embeddings array in ``path``.

    Args:
        path: a ``.npy``, ``.npz``, ``.pt``/``.pth`` or ``.safetensors`` file.
        key: which array of a multi-array file (.npz, dict .pt, .safetensors); default: the only one.

    Raises:
        UsageError: missing file, unknown format, unknown key, not 2-D, fewer than 2 rows.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory, expected an embeddings file")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(
            f"{p}: unknown format {suffix or '(no suffix)'}; use one of {', '.join(SUFFIXES)}"
        )
    if suffix == ".npy":
        arr = _open_npy(p)
        _validate(p, None, arr, arr.shape, arr.dtype)
        return EmbeddingsFile(p, None, (arr.shape[0], arr.shape[1]), arr)
    if suffix == ".npz":
        name, arr = _pick(_open_npz(p), key, p)
        _validate(p, name, arr, arr.shape, arr.dtype)
        return EmbeddingsFile(p, name, (arr.shape[0], arr.shape[1]), arr)
    if suffix in (".pt", ".pth"):
        tensors = _open_pt(p)
        if "" in tensors:
            if key is not None:
                raise UsageError(f"{p}: holds a single tensor; --key {key!r} does not apply")
            name, arr = None, tensors[""]
        else:
            name, arr = _pick(tensors, key, p)
        _validate(p, name, arr, tuple(arr.shape), arr.dtype)
        return EmbeddingsFile(p, name, (arr.shape[0], arr.shape[1]), arr)
    return _open_safetensors(p, key)


def _open_safetensors(p: Path, key: str | None) -> EmbeddingsFile:
    try:
        handle = safe_open(str(p), framework="pt")
        keys = list(handle.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise UsageError(f"{p}: not a readable .safetensors file ({exc})") from exc
    name, _ = _pick(dict.fromkeys(keys), key, p)
    sl = handle.get_slice(name)
    shape = tuple(sl.get_shape())
    st = sl.get_dtype()  # "F32", "BF16", "I64", "BOOL", ...
    kind = "float" if st.startswith(("F", "BF")) else "int" if st.startswith(("I", "U")) else st
    _validate(p, name, sl, shape, kind)
    return EmbeddingsFile(p, name, (shape[0], shape[1]), sl)
