"""The user's cache: every entry made at most once, whole or not at all, and private to the user.

Nightlies, several users and dask workers on one host build kernels and images side by side, so every
cache entry (a file or a folder) is made by get_or_build():
- an exclusive flock per entry (DEST.lock): a second process wanting the same entry waits for the
  first and then finds it made;
- the entry is built in a temporary name beside it and renamed into place, so a reader never sees
  half of one and a crash leaves nothing under the entry's name;
- the cache's root and every entry are 0700 (folders) or 0600 (files): the guest's SSH host key is
  baked into the images, and host-key pinning means nothing if others can read it.
Shared work areas (a warm kernel build directory) take locked() for as long as they are used.
Every wait for a lock is bounded.
"""

import contextlib
import fcntl
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from .errors import InfraError

LOCK_TIMEOUT = 4 * 3600  # a lock holder's own work is bounded (a kernel build: 3 h)


def private_root(root: Path) -> Path:
    """ROOT made, or made private: others can reach nothing below it."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if root.stat().st_mode & 0o077:
        root.chmod(0o700)
    return root


def _private_dirs(root: Path, folder: Path) -> None:
    """FOLDER and its parents up to ROOT, each made 0700 if missing."""
    missing = []
    for parent in (folder, *folder.parents):
        if parent == root or parent.exists():
            break
        missing.append(parent)
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT, what: str = "") -> Iterator[None]:
    """An exclusive flock on PATH.lock for the block, waited for at most TIMEOUT seconds."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InfraError(f"waited {timeout:.0f} s for {what or path} (locked by another "
                                     f"labrunner: {lock_path})") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def busy(path: Path) -> bool:
    """Whether another process holds PATH's lock now (a warm directory in use must not be pruned)."""
    lock_path = path.with_name(path.name + ".lock")
    if not lock_path.exists():
        return False
    fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def get_or_build(root: Path, dest: Path, build: Callable[[Path], None], timeout: float = LOCK_TIMEOUT) -> Path:
    """DEST, an entry under the cache ROOT, made by BUILD(tmp) at most once: BUILD makes a file or a
    folder at the path it is given, which then becomes DEST in one rename. A failed BUILD leaves nothing."""
    if dest.exists():
        return dest
    private_root(root)
    _private_dirs(root, dest.parent)
    with locked(dest, timeout, what=dest.name):
        if dest.exists():  # made by another process while this one waited
            return dest
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        _remove(tmp)
        try:
            build(tmp)
            if not tmp.exists():
                raise InfraError(f"building the cache entry {dest} made nothing")
            tmp.chmod(0o700 if tmp.is_dir() else 0o600)
            os.replace(tmp, dest)
        except BaseException:
            _remove(tmp)
            raise
    return dest


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """PATH's content replaced by DATA in one rename (a reader sees the old or the new, never half)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
