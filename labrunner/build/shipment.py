"""A resolved kernel as one content-keyed archive, for lab hosts that share nothing.

The host that resolves a kernel (fetches the Debian package, builds the recipe) packs what a boot
needs: the bzImage, its modules and its vmlinux, with the facts a run records (release, source,
commit, patchset hash) in kernel.json. Another host installs it once into its own cache under
kernels/shipped/NAME-DIGEST, DIGEST being the archive's sha256, and boots it with `labrunner run
--kernel-artifacts DIR`; a run there records the kernel exactly as a run on the first host would.
"""

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .. import cache as cache_mod
from ..errors import InfraError, UserError
from .kernel import KernelArtifacts

MANIFEST = "kernel.json"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def pack(kernel: KernelArtifacts) -> Tuple[str, bytes]:
    """(digest, archive) of KERNEL: an uncompressed tar, since bzImage and Debian's modules are
    compressed already, and the rest crosses a lab's network once per host."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        text = json.dumps(_facts(kernel), sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(text), 0o600
        tar.addfile(info, io.BytesIO(text))
        tar.add(kernel.image, "bzImage")
        if kernel.modules is not None:
            tar.add(kernel.modules, "modules")
        if kernel.vmlinux is not None:
            tar.add(kernel.vmlinux, "vmlinux")
    data = buf.getvalue()
    return digest(data), data


def _facts(kernel: KernelArtifacts) -> Dict[str, Any]:
    return {"name": kernel.name, "release": kernel.release, "source": kernel.source, "commit": kernel.commit,
            "patchset_hash": kernel.patchset_hash, "modules": kernel.modules is not None,
            "vmlinux": kernel.vmlinux is not None}


def stage(kernel: KernelArtifacts, dest: Path) -> Path:
    """KERNEL as a folder that `labrunner run --kernel-artifacts DEST` boots on this host: the manifest,
    and links to its files where they are, in the cache (a bisection's states, run by other processes)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, path in (("bzImage", kernel.image), ("modules", kernel.modules), ("vmlinux", kernel.vmlinux)):
        link = dest / name
        if link.is_symlink():
            link.unlink()
        if path is not None:
            link.symlink_to(Path(path).resolve())
    cache_mod.write_atomic(dest / MANIFEST, json.dumps(_facts(kernel), sort_keys=True).encode(), mode=0o644)
    return dest


def entry(cache: Path, name: str, key: str) -> Path:
    return cache / "kernels" / "shipped" / f"{name}-{key}"


def installed(cache: Path, name: str, key: str) -> Optional[Path]:
    path = entry(cache, name, key)
    return path if (path / MANIFEST).is_file() else None


def install(cache: Path, name: str, key: str, data: bytes) -> Path:
    """The archive DATA, checked against KEY, unpacked once into this host's cache."""
    if digest(data) != key:
        raise InfraError(f"kernel {name}: the archive received does not match its digest {key}")

    def unpack(staging: Path) -> None:
        staging.mkdir()
        unpack_archive(data, staging, f"kernel {name}")
    return cache_mod.get_or_build(cache, entry(cache, name, key), unpack)


def unpack_archive(data: bytes, dest: Path, what: str) -> None:
    """A tar from another lab host into DEST: files, folders and links that stay inside, nothing else.
    Links to absolute paths (Debian's modules/build, to the packing host's headers) are dropped."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        for m in members:
            if m.name.startswith("/") or ".." in Path(m.name).parts or m.issym() and ".." in Path(m.linkname).parts:
                raise InfraError(f"{what}: archive member {m.name!r} points outside it")
        tar.extractall(dest, members=[m for m in members if m.isfile() or m.isdir()
                                      or m.issym() and not m.linkname.startswith("/")])


def load(path: Path) -> KernelArtifacts:
    """The kernel installed in PATH (an entry made by install())."""
    try:
        facts = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a shipped kernel ({MANIFEST}: {e})") from None
    modules = path / "modules" if facts["modules"] else None
    return KernelArtifacts(name=facts["name"], image=path / "bzImage", release=facts["release"],
                           source=facts["source"], modules=modules, commit=facts["commit"],
                           vmlinux=path / "vmlinux" if facts["vmlinux"] else None,
                           patchset_hash=facts["patchset_hash"])
