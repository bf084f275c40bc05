"""Kernels: from a bzImage path, a Debian kernel package or a source recipe, to a bootable image.

A Debian package (such as linux-image-amd64 from bookworm-backports) is resolved through apt's own
metadata to a concrete linux-image-<release> package and version, downloaded with apt-get and
extracted into the cache once per version (build.debian). Source recipes are built by build.kbuild.
"""

import dataclasses
import shutil
import struct
from pathlib import Path
from typing import Callable, Optional

from ..config import Kernel
from ..errors import InfraError, UserError
from . import debian, kbuild


@dataclasses.dataclass(frozen=True)
class KernelArtifacts:
    name: str
    image: Path
    release: str
    source: str
    modules: Optional[Path] = None  # lib/modules/<release>, for modular kernels
    vmlinux: Optional[Path] = None  # with line tables, for symbolising splat frames
    commit: Optional[str] = None  # a source recipe's base commit
    patchset_hash: str = ""  # over its patches (KCIDB's definition)


def bzimage_release(data: bytes) -> Optional[str]:
    """The release string from a bzImage's setup header (boot protocol 2.00+), or None."""
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        return None
    offset = struct.unpack_from("<H", data, 0x20E)[0] + 0x200
    text = data[offset:offset + 256].split(b"\0")[0].decode("ascii", "replace")
    return text.split()[0] if text else None


def read_release(path: Path) -> str:
    with open(path, "rb") as f:
        release = bzimage_release(f.read(0x10000))
    if release is None:
        raise UserError(f"{path} is not an x86 bzImage (no 'HdrS' setup header)")
    return release


def _debian_artifacts(kernel: Kernel, tree: Path) -> KernelArtifacts:
    images = sorted((tree / "boot").glob("vmlinuz-*"))
    if not images:
        raise InfraError(f"{tree}: the package has no /boot/vmlinuz-*")
    release = images[0].name[len("vmlinuz-"):]
    modules = tree / "lib" / "modules" / release
    return KernelArtifacts(name=kernel.name, image=images[0], release=release,
                           source=f"debian:{tree.name}", modules=modules if modules.is_dir() else None)


def resolve(kernel: Kernel, cache: Path, progress: Callable[[str], None] = lambda s: None) -> KernelArtifacts:
    """Make KERNEL bootable: fetch or locate its image and modules."""
    if kernel.kind == "path":
        return KernelArtifacts(name=kernel.name, image=kernel.path, release=read_release(kernel.path),
                               source=f"path:{kernel.path}", modules=kernel.modules)
    if kernel.kind == "debian":
        if shutil.which("apt-get") is None:
            raise InfraError("Debian kernel packages need apt-get on this host")
        return _debian_artifacts(kernel, debian.fetch(kernel.package, kernel.suite, cache, progress))
    built = kbuild.build(kernel, cache, progress)
    vmlinux = built.dir / "vmlinux"
    return KernelArtifacts(name=kernel.name, image=built.bzimage, release=read_release(built.bzimage),
                           source=f"source:{built.key}", vmlinux=vmlinux if vmlinux.is_file() else None,
                           commit=built.commit, patchset_hash=built.patchset_hash)

