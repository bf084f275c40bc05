"""Debian packages through apt: a metapackage (linux-image-amd64, linux-source-6.12) resolved to a
concrete package and version with apt's own metadata, downloaded and unpacked once per version.

Both kernel resolution (prebuilt linux-image packages) and kernel building (linux-source packages)
use it; it imports neither.
"""

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from .. import cache as cache_mod
from .. import process
from ..errors import InfraError, UserError

log = logging.getLogger(__name__)


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


def resolve(package: str, suite: Optional[str]) -> Tuple[str, str]:
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


def resolve_cached(package: str, suite: Optional[str], cache: Path) -> Tuple[str, str]:
    """resolve(), remembered until apt's package lists change (saves ~1 s of apt-cache per boot)."""
    stamp = hashlib.sha256(f"{package}\0{suite}\0{_apt_lists_stamp()}".encode()).hexdigest()[:20]
    memo = cache / "kernels" / "debian" / f".resolved-{stamp}.json"
    try:
        data = json.loads(memo.read_text())
        return data["name"], data["version"]
    except (OSError, ValueError, KeyError):
        pass

    def remember(path: Path) -> None:
        name, version = resolve(package, suite)
        path.write_text(json.dumps({"name": name, "version": version}))
    data = json.loads(cache_mod.get_or_build(cache, memo, remember).read_text())
    return data["name"], data["version"]


def download_unpacked(name: str, version: str, tmp: Path, progress: Callable[[str], None],
                      timeout: float = 900) -> Path:
    """Package NAME=VERSION downloaded into the folder TMP and unpacked there; returns the unpacked tree."""
    progress(f"downloading {name} {version}")
    process.run(["apt-get", "download", f"{name}={version}"], cwd=tmp, timeout=timeout, what=f"downloading {name}")
    debs = list(Path(tmp).glob("*.deb"))
    if len(debs) != 1:
        raise InfraError(f"apt-get download {name}={version} left {len(debs)} .deb files")
    progress(f"unpacking {debs[0].name}")
    tree = Path(tmp) / "tree"
    process.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], timeout=600, what=f"unpacking {name}")
    return tree


def fetch(package: str, suite: Optional[str], cache: Path, progress: Callable[[str], None]) -> Path:
    """PACKAGE's newest version in SUITE, unpacked in the cache (once per version); returns the tree.
    Offline, or with apt's lists gone, the newest copy already in the cache does."""
    try:
        name, version = resolve_cached(package, suite, cache)
    except InfraError as e:
        found = sorted((cache / "kernels" / "debian").glob(f"{package}_*/boot/vmlinuz-*"))
        if not found:
            raise
        log.warning("apt lookup failed, using the cached %s: %s", found[-1], e)
        return found[-1].parent.parent
    dest = cache / "kernels" / "debian" / f"{package}_{name}_{version}"

    def make(path: Path) -> None:
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            download_unpacked(name, version, Path(tmp), progress).rename(path)
    return cache_mod.get_or_build(cache, dest, make)
