"""Kernels: from a bzImage path, a Debian kernel package or a source recipe, to a bootable image.

A Debian package (such as linux-image-amd64 from bookworm-backports) is resolved through apt's own
metadata to a concrete linux-image-<release> package and version, downloaded with apt-get and
extracted into the cache once per version. Source recipes are built by labrunner.kbuild.
"""

import dataclasses
import hashlib
import json
import logging
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from . import kbuild, process
from .config import Kernel
from .errors import InfraError, UserError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class KernelArtifacts:
    name: str
    image: Path
    release: str
    source: str
    modules: Optional[Path] = None  # lib/modules/<release>, for modular kernels
    vmlinux: Optional[Path] = None  # with line tables, for symbolising splat frames


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


def parse_apt_show(text: str) -> Dict[str, str]:
    """The first stanza of `apt-cache show` output as a dict of fields."""
    fields: Dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def image_dependency(fields: Dict[str, str]) -> Optional[str]:
    """The linux-image-* package a metapackage depends on, if any."""
    for dep in fields.get("Depends", "").split(","):
        name = dep.strip().split()[0] if dep.strip() else ""
        if name.startswith("linux-image-"):
            return name
    return None


def resolve_debian(package: str, suite: Optional[str]) -> Tuple[str, str]:
    """(concrete package, version), following metapackages such as linux-image-amd64."""
    name, target = package, f"{package}/{suite}" if suite else package
    for _ in range(4):
        out = process.run(["apt-cache", "show", "--no-all-versions", target], timeout=60,
                          what=f"looking up Debian package {target}")
        fields = parse_apt_show(out)
        if not fields:
            raise UserError(f"Debian package {target} not found by apt-cache (is its suite in apt's sources?)")
        dependency = image_dependency(fields)
        if dependency is None:
            return name, fields["Version"]
        name, target = dependency, f"{dependency}/{suite}" if suite else dependency
    raise InfraError(f"{package}: metapackage chain too deep")


def _apt_lists_stamp(lists: Path = Path("/var/lib/apt/lists")) -> str:
    """Changes whenever `apt-get update` changes what apt-cache can answer."""
    try:
        return ",".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in sorted(lists.glob("*_Packages*")))
    except OSError:
        return ""


def resolve_debian_cached(package: str, suite: Optional[str], cache: Path) -> Tuple[str, str]:
    """resolve_debian, remembered until apt's package lists change (saves ~1 s of apt-cache per boot)."""
    stamp = hashlib.sha256(f"{package}\0{suite}\0{_apt_lists_stamp()}".encode()).hexdigest()[:20]
    memo = cache / "kernels" / "debian" / f".resolved-{stamp}.json"
    try:
        data = json.loads(memo.read_text())
        return data["name"], data["version"]
    except (OSError, ValueError, KeyError):
        pass
    name, version = resolve_debian(package, suite)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"name": name, "version": version}))
    return name, version


def fetch_debian(kernel: Kernel, cache: Path, progress: Callable[[str], None]) -> KernelArtifacts:
    try:
        name, version = resolve_debian_cached(kernel.package, kernel.suite, cache)
    except InfraError as e:
        # Offline, or apt's lists are gone: fall back to the newest extracted copy in the cache.
        found = sorted((cache / "kernels" / "debian").glob(f"{kernel.package}_*/boot/vmlinuz-*"))
        if not found:
            raise
        log.warning("apt lookup failed, using the cached %s: %s", found[-1], e)
        return _debian_artifacts(kernel, found[-1].parent.parent)
    dest = cache / "kernels" / "debian" / f"{kernel.package}_{name}_{version}"
    if not dest.is_dir():
        progress(f"downloading {name} {version}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            process.run(["apt-get", "download", f"{name}={version}"], cwd=tmp, timeout=900,
                        what=f"downloading {name}")
            debs = list(Path(tmp).glob("*.deb"))
            if len(debs) != 1:
                raise InfraError(f"apt-get download {name}={version} left {len(debs)} .deb files")
            progress(f"extracting {debs[0].name}")
            tree = Path(tmp) / "tree"
            process.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], timeout=600, what="extracting the kernel")
            tree.rename(dest)
    return _debian_artifacts(kernel, dest)


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
        return fetch_debian(kernel, cache, progress)
    built = kbuild.build(kernel, cache, progress)
    vmlinux = built.dir / "vmlinux"
    return KernelArtifacts(name=kernel.name, image=built.bzimage, release=read_release(built.bzimage),
                           source=f"source:{built.key}", vmlinux=vmlinux if vmlinux.is_file() else None)

