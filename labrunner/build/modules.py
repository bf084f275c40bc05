"""A modular kernel's modules for the initramfs, read on the host: their names, contents (decompressed
here, not by the guest under TCG), dependencies, and the order and waves the guest's init loads them in."""

import gzip
import lzma
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from .. import process
from ..errors import InfraError

_DEPENDS = re.compile(rb"(?:^|\0)depends=([^\0]*)")


def module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        if shutil.which("zstd") is None:
            raise InfraError(f"{path} is zstd-compressed and zstd is not installed")
        with tempfile.NamedTemporaryFile() as tmp:
            process.run(["zstd", "-d", "-f", "-q", str(path), "-o", tmp.name], timeout=60, what="zstd")
            return Path(tmp.name).read_bytes()
    return data


def module_depends(ko: bytes) -> List[str]:
    m = _DEPENDS.search(ko)
    return [d.replace("-", "_") for d in m.group(1).decode().split(",") if d] if m else []


def load_order(wanted: Iterable[str], depends: Callable[[str], Optional[List[str]]]) -> List[str]:
    """WANTED modules and their dependencies, dependencies first. DEPENDS(name) is None when the
    kernel has no such module (built in, or not configured): it is skipped."""
    order: List[str] = []
    visiting = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        deps = depends(name)
        if deps is None:
            return
        visiting.add(name)
        for dep in deps:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"))
    return order


def load_waves(order: List[str], depends: Dict[str, List[str]]) -> List[Tuple[int, str]]:
    """ORDER (dependencies first) as (wave, name), wave by wave: a module's wave is one past its
    dependencies' latest, so the guest loads each wave's modules at once and waits between waves."""
    wave: Dict[str, int] = {}
    for name in order:
        wave[name] = 1 + max((wave[d] for d in depends.get(name, []) if d in wave), default=-1)
    return sorted(((wave[name], name) for name in order), key=lambda wn: wn[0])
