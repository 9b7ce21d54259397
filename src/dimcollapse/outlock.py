"""One writer per output: an advisory lock that a command takes on what it writes before it
writes anything, and holds until it ends.

Two ``dimcollapse train`` processes started on one ``--out`` would otherwise both run, both say
done, and leave checkpoints of one run beside metrics lines of both. :func:`folder_lock` takes
``fcntl.flock`` on the output folder itself (creating it, and the folders above it, when they do
not exist yet); :func:`file_lock` takes it on a hidden ``.NAME.lock`` file beside an output
file. The second writer is refused at once with a :class:`~dimcollapse.errors.UsageError` (one
``error:`` line, exit status 2) and writes nothing: every file of the folder is the first
writer's. The lock is the kernel's: it dies with the process (a kill, a crash), so a stale lock
never blocks a rerun; on a file system without ``flock`` (some network mounts) nothing is locked.

What the lock creates is removed when it is released unless the command filled it: a folder it
made that is still empty (a run refused, interrupted or failed before writing), and the lock
file. A failing command removes its own files first with
:func:`~dimcollapse.fileio.removed_on_failure`, told by :attr:`OutputLock.created` which folders
the lock made for it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dimcollapse.errors import UsageError
from dimcollapse.fileio import check_output_dir, check_output_file


@dataclass(frozen=True)
class OutputLock:
    """A held lock: the output it guards and the highest folder made for it (None when the
    folder existed, or for a file's lock)."""

    path: Path
    created: Path | None = None


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike[str], option: str = "--out") -> Iterator[OutputLock]:
    """Hold the lock on output folder ``path`` for the block; a UsageError if another process
    holds it. The folder is checked (:func:`~dimcollapse.fileio.check_output_dir`) and made
    first; a path that exists as a file is left to the command's own check (nothing locked)."""
    target = check_output_dir(path, option)
    absolute = Path(os.path.abspath(target))
    if absolute.exists() and not absolute.is_dir():
        yield OutputLock(absolute)
        return
    top = _highest_missing(absolute)
    fd = _open_locked(absolute, option, target, directory=True)
    try:
        yield OutputLock(absolute, top)
    finally:
        try:
            if top is not None:  # a folder that stayed empty goes, with the empty ones above
                _remove_empty(absolute, top)
        finally:
            os.close(fd)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], option: str = "--out") -> Iterator[OutputLock]:
    """Hold the lock on output file ``path`` for the block (on ``.NAME.lock`` beside it, removed
    at the end); a UsageError if another process holds it. The file is checked
    (:func:`~dimcollapse.fileio.check_output_file`) first."""
    target = check_output_file(path, option)
    absolute = Path(os.path.abspath(target))
    lock = absolute.with_name(f".{absolute.name}.lock")
    top = _highest_missing(absolute.parent)
    fd = _open_locked(lock, option, target, directory=False)
    try:
        yield OutputLock(absolute, top)
    finally:
        try:
            with contextlib.suppress(OSError):
                if _same_file(lock, fd):
                    lock.unlink()  # while held: a process that opened it checks, and retries
            if top is not None:
                _remove_empty(absolute.parent, top)
        finally:
            os.close(fd)


def _highest_missing(folder: Path) -> Path | None:
    """The highest of ``folder`` and its ancestors that does not exist (None: it exists)."""
    if folder.exists():
        return None
    top = folder
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    return top


def _open_locked(path: Path, option: str, shown: Path, *, directory: bool) -> int:
    """An open descriptor of ``path`` (a folder, or a lock file: made as needed) holding its
    exclusive ``flock``; a UsageError naming the holder when another process has it. A path
    removed or replaced between the open and the lock (its holder's cleanup) is opened again."""
    import fcntl  # optional: POSIX only; the module's other names import anywhere

    for _attempt in range(100):
        try:
            (path if directory else path.parent).mkdir(parents=True, exist_ok=True)
            if directory:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            else:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # a folder above removed meanwhile by another's cleanup
            continue
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(shown)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f" (pid {holder})" if holder else ""
                raise UsageError(
                    f"{option} {shown}: another dimcollapse process{who} is writing there; "
                    f"wait for it to end, or choose another {option}"
                ) from None
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return os.open(path, os.O_RDONLY)  # no locks on this file system: unguarded
            raise
        if _same_file(path, fd):
            return fd
        os.close(fd)  # locked a folder or lock file that is gone: open the new one
    raise UsageError(f"{option} {shown}: could not lock it (removed and made again repeatedly)")


def _same_file(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file or folder open as ``fd``."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _remove_empty(folder: Path, top: Path) -> None:
    """Remove ``folder`` and the folders above it up to ``top`` while they are empty."""
    current = folder
    while True:
        try:
            current.rmdir()
        except OSError:  # not empty (the command's outputs), or gone already
            if current.exists():
                return
        if current == top or current.parent == current:
            return
        current = current.parent


def _holder_pid(fd: int) -> int | None:
    """The process holding a ``flock`` on ``fd``'s file, from ``/proc/locks`` (Linux); None
    where unknown."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key and "->" not in line:
            with contextlib.suppress(ValueError):
                pid = int(fields[4])
                return pid if pid > 0 and pid != os.getpid() else None
    return None
