"""Safe output files: write to a temporary name, then ``os.replace``; never leave partial files."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dimcollapse.errors import UsageError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    If the body raises, the temporary file is removed and ``path`` is untouched, so a failed
    command leaves no partial output behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def remove_orphan_temps(folder: str | os.PathLike[str]) -> None:
    """Delete the temporary files (``.NAME.*.tmp*``) that :func:`atomic_path` leaves in
    ``folder`` when a kill interrupts a write; nothing else is touched."""
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(".*.tmp*"):
            if p.is_file():
                p.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_output_suffix(path: str | os.PathLike[str], allowed: tuple[str, ...]) -> Path:
    """Return ``path`` as a Path, or raise UsageError if its suffix is not in ``allowed``."""
    p = Path(path)
    if p.suffix.lower() not in allowed:
        raise UsageError(f"{p}: output must end in one of {', '.join(allowed)}")
    return p


def load_torch_weights_only(path: str | os.PathLike[str], what: str = "torch file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors naming ``what``
    the file should be: a file that needs arbitrary unpickling is refused (never run),
    anything else unreadable is named as such."""
    import warnings

    import torch

    kind = file_kind(path)
    if kind not in ("zip", "pickle"):  # what torch.save writes: a zip archive, or a pickle
        raise UsageError(f"{path}: not a {what} ({_KIND_TEXT[kind]}, not a PyTorch file)")
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4 in the checkpoint": the refusal below says more
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle and zip errors of every kind
        text = str(exc)
        if "weights_only" in text or "Unpickl" in text or "Unsupported global" in text:
            raise UsageError(
                f"{path}: not a {what} that can be loaded safely: it holds pickled Python "
                "objects, and unpickling can run code (files load with weights_only=True); save "
                "a tensor, a dict of tensors or a state_dict instead"
            ) from None
        # torch's own message is often a bare code ("invalid load key, '1'" or "105")
        raise UsageError(f"{path}: not a {what} (not a PyTorch file)") from None


#: How :func:`file_kind`'s answers read in a message.
_KIND_TEXT = {
    "directory": "a directory",
    "empty": "an empty file",
    "npy": "a NumPy .npy file",
    "zip": "a zip archive",
    "pickle": "a pickle",
    "other": "unrecognised content",
}


def file_kind(path: str | os.PathLike[str]) -> str:
    """What a file is by its first bytes, before a reader that would misname it is called
    (``np.load`` calls any non-NumPy file "pickled (object) data"): ``"directory"``,
    ``"empty"``, ``"npy"`` (NumPy's magic), ``"zip"`` (``.npz``, ``torch.save``'s archive),
    ``"pickle"`` (a protocol-2+ pickle, as old ``torch.save`` wrote) or ``"other"``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except IsADirectoryError:
        return "directory"
    if not head:
        return "empty"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    return "other"


def plain_data(obj: Any) -> Any:
    """Tuples -> lists and mappings -> dicts, recursively: the form in which data compares equal
    after a JSON or YAML round trip, and that a ``weights_only`` checkpoint can hold."""
    if isinstance(obj, dict):
        return {k: plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_data(v) for v in obj]
    return obj


def json_roundtrip(obj: Any) -> Any:
    """``obj`` as it reads back from a JSON file: tuples -> lists, keys -> strings, NumPy floats
    -> floats (unlike :func:`plain_data`, which keeps every value as it is)."""
    return json.loads(json.dumps(obj))
