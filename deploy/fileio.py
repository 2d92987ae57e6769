"""Writing outputs safely: where they go is checked up front, files appear atomically (a failure
or an interrupt never leaves a partial file under its name), a run folder has one writer at a time.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError, RunError

LOCK_NAME = ".lock"


def check_writable(path: str | Path, flag: str, folder: bool = False) -> None:
    """Fail fast, before any work, when ``path`` cannot be written; creates nothing.

    Args:
        path: the output file (or, with ``folder``, the output folder); it need not exist yet.
        flag: how the user gave it (``--out``), for the message.
        folder: ``path`` is a folder to write into rather than a file.

    Raises:
        InputError: ``path`` is a folder (a file with ``folder``), a parent is a file, or the
            nearest existing folder does not take a new file (read-only, /proc, permissions).
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path} is a file; give a folder")
    base = path if folder else path.parent
    while not base.exists() and base != base.parent:
        base = base.parent  # the nearest existing ancestor: the one that must take new entries
    if not base.is_dir():
        raise InputError(f"{flag} {path}: {base} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gradgroup-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(
            f"{flag} {path}: the folder {base} is not writable ({exc.strerror or exc})"
        ) from None


def temp_beside(path: str | Path, tag: str = "tmp") -> Path:
    """Create an empty hidden file with a unique name beside ``path`` (its folders too).

    The name keeps ``path``'s suffix (writers such as OpenCV and matplotlib choose the format from
    it) and is unique, so two writers of the same ``path`` never share it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".{tag}{path.suffix}", dir=path.parent
    )
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: str | Path) -> None:
    """Move a finished temp file onto ``path`` durably (readable by all: artifacts are shared).

    The file's data reaches the disk (``fsync``) before the rename, and the rename itself (the
    folder's ``fsync``, where the OS allows one) after it, so a power cut leaves either the old
    file or the complete new one under the name, never an empty one.
    """
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(Path(path).parent, folder=True)


def fsync_path(path: str | Path, folder: bool = False) -> None:
    """``fsync`` a file (errors propagate) or a folder (skipped where the OS or file system
    cannot: Windows opens no folders, some file systems refuse folder fsyncs)."""
    flags = os.O_RDONLY if os.name != "nt" or folder else os.O_RDWR  # Windows syncs writers only
    if folder:
        flags |= getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a hidden temp path beside ``path``; rename it into place when the block succeeds.

    On any exception the temp file is deleted and ``path`` is left as it was; an OSError (disk
    full, ``ulimit -f``) becomes a RunError naming ``path``.
    """
    tmp: Path | None = None
    try:
        tmp = temp_beside(path)
        yield tmp
        publish(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


@contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) for the block: one writer at a time.

    The lock is ``flock`` on ``folder/.lock`` (which holds the owner's pid): the kernel releases it
    when the process ends, crash or kill included. On exit the lock file is removed, and so are the
    folders this call created when they are still empty (a run that failed on bad input).

    Raises:
        InputError: another process (``what``: "training", "pipeline") holds the folder.
    """
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    fd = _acquire(folder / LOCK_NAME, what)
    try:
        yield folder
    finally:
        (folder / LOCK_NAME).unlink(missing_ok=True)  # while held; _acquire handles a racing open
        os.close(fd)
        for path in created:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break


def _acquire(lock: Path, what: str) -> int:
    """Open and ``flock`` ``lock``; retries when a holder removed it between open and lock."""
    import fcntl  # POSIX only; deploy must import anywhere

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InputError(f"{lock.parent} is in use by another {what} (pid {pid})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # locked a file its holder had just removed: take the new one


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def to_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that every strict parser reads: non-finite floats (an infinite SQNR, a NaN
    loss) become null instead of the ``Infinity``/``NaN`` tokens JSON does not have."""
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
