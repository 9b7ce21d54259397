"""Safe output files: write to a temporary name, then ``os.replace``; never leave partial files."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent
        )
    except OSError as exc:  # named after the temporary file: name the output instead
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
    try:
        try:
            yield tmp_path
            os.replace(tmp_path, target)
        except OSError as exc:
            raise _about_target(exc, tmp_path, target) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _about_target(exc: OSError, tmp: Path, target: Path) -> OSError:
    """The error of a write to ``tmp`` as one about ``target``, the file the user named: a
    writer's short write without an errno (NumPy's ``"N requested and M written"``) is a full
    disk."""
    number = exc.errno
    if number is None and "requested and" in str(exc) and "written" in str(exc):
        number = errno.ENOSPC
    about_tmp = exc.filename is None or str(exc.filename) == str(tmp)
    if number is None or not about_tmp:
        return exc
    return OSError(number, exc.strerror or os.strerror(number), str(target))


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
    import torch  # torch-free --help: torch 1440 ms

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


#: File systems that hold no ordinary files: an output there fails with a confusing error.
SPECIAL_FILE_SYSTEMS = frozenset(
    [
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "mqueue",
        "binfmt_misc",
        "efivarfs",
        "autofs",
        "rpc_pipefs",
        "nsfs",
    ]
)


def _mounts() -> list[tuple[str, str]]:
    """(mount point, file system type) of this process's mounts; [] where unknown."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) >= 5 and rest:
            point = parts[4].encode().decode("unicode_escape")  # \040 is a space
            mounts.append((point, rest.split()[0]))
    return mounts


def file_system_type(path: str | os.PathLike[str]) -> str | None:
    """The type of the file system ``path`` (which exists) is on, e.g. ``ext4``, ``proc``."""
    resolved = str(Path(path).resolve())
    best, kind = "", None
    for point, fs in _mounts():
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fs
    return kind


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


#: The longest name of one file or folder, and of a whole path, where the system does not say
#: (Linux's NAME_MAX and PATH_MAX).
NAME_MAX, PATH_MAX = 255, 4096


def check_name_lengths(path: str | os.PathLike[str], option: str = "--out") -> None:
    """Refuse a path with a name longer than its file system takes (``File name too long`` from
    every call that touches it), naming the name's length and the limit."""
    absolute = os.fsencode(os.path.abspath(path))
    try:
        base = _existing_ancestor_of_names(Path(os.path.abspath(path)))
        name_max = os.pathconf(base, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = NAME_MAX
    longest = max(absolute.split(b"/"), key=len)
    if len(longest) > name_max:
        shown = os.fsdecode(longest)
        shown = shown if len(shown) <= 40 else shown[:20] + "..." + shown[-10:]
        raise UsageError(
            f"{option}: the name {shown!r} is {len(longest)} bytes long; the file system "
            f"takes names of at most {name_max} bytes"
        )
    if len(absolute) >= PATH_MAX:
        raise UsageError(
            f"{option}: the path is {len(absolute)} bytes long; the system takes paths of "
            f"fewer than {PATH_MAX} bytes"
        )


def _existing_ancestor_of_names(path: Path) -> Path:
    """The nearest ancestor of ``path`` that exists, asking only of names short enough to ask
    about (``os.stat`` of a too-long name raises instead of answering)."""
    for parent in (path, *path.parents):
        if all(len(os.fsencode(p)) <= NAME_MAX for p in parent.parts) and parent.exists():
            return parent
    return Path("/")


def check_output_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Refuse, before any work, a directory outputs cannot go to: one under a file, on a special
    file system (/proc, /sys, /dev), read-only, or not writable. It need not exist yet (its
    nearest existing ancestor is checked); returns it as a Path."""
    target = Path(path)
    check_name_lengths(target, option)
    base = _existing_ancestor(target)
    if not base.is_dir():
        what = "is" if base == Path(os.path.abspath(target)) else f"lies under {base}, which is"
        raise UsageError(f"{option} {target}: {what} a file, not a directory")
    kind = file_system_type(base)
    if kind in SPECIAL_FILE_SYSTEMS:
        raise UsageError(
            f"{option} {target}: on the {kind} file system, which holds no ordinary files; "
            f"choose another {option}"
        )
    with contextlib.suppress(OSError):
        if os.statvfs(base).f_flag & os.ST_RDONLY:
            raise UsageError(
                f"{option} {target}: on a read-only file system; choose another {option}"
            )
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {target}: {base} is not writable (permission denied)")
    return target


def check_output_file(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Refuse an output file that cannot be written as a regular file: its directory fails
    :func:`check_output_dir`, or it exists as a directory or a special file (a device, a pipe)."""
    target = Path(path)
    check_name_lengths(target, option)
    if target.is_dir():
        raise UsageError(f"{option} {target}: is a directory")
    if target.exists() and not target.is_file():
        raise UsageError(f"{option} {target}: not a regular file (a device, pipe or socket)")
    check_output_dir(target.parent if str(target.parent) else ".", option)
    return target


def free_space_text(path: str | os.PathLike[str]) -> str:
    """How much space the file system holding ``path`` (or its nearest existing ancestor) has
    left, e.g. ``"12 MiB free on the file system of /data/run"``; "" when unknown."""
    base = _existing_ancestor(Path(path).parent if not Path(path).is_dir() else Path(path))
    try:
        st = os.statvfs(base)
    except OSError:
        return ""
    return f"{st.f_bavail * st.f_frsize / 2**20:.0f} MiB free on the file system of {base}"


@contextlib.contextmanager
def removed_on_failure(
    root: str | os.PathLike[str],
    keep: Callable[[], bool] | None = None,
    created: str | os.PathLike[str] | None = None,
) -> Iterator[None]:
    """On an exception in the block, remove what the block created at or under ``root`` (and
    the folders made above it), unless ``keep()`` says the outputs are worth keeping; what was
    there before is never touched. A signal (``Terminated``, ``KeyboardInterrupt``) keeps all:
    a stopped run is continued, not restarted. ``created``: the highest folder made for
    ``root`` just before the block (by :func:`dimcollapse.outlock.folder_lock`), removed as if
    the block had made it."""
    root = Path(os.path.abspath(root))
    top = root
    while not top.parent.exists() and top.parent != top.parent.parent:
        top = top.parent
    existed = root.exists()
    if created is not None:
        top, existed = Path(os.path.abspath(created)), False
    before = {p for p in root.rglob("*")} if root.is_dir() else set()
    try:
        yield
    except Exception:
        if keep is None or not keep():
            _remove_new(root, top, existed, before)
        raise


def _remove_new(root: Path, top: Path, existed: bool, before: set[Path]) -> None:
    """Delete what appeared under ``root`` since ``before`` (``top``: the highest folder
    created when ``root`` did not exist)."""
    if not existed:
        target = top if top.exists() else root
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            with contextlib.suppress(OSError):
                target.unlink()
        return
    if not root.is_dir():
        return
    for p in sorted(root.rglob("*"), key=lambda q: len(q.parts)):
        if p in before or not (p.exists() or p.is_symlink()):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
