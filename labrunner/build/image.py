"""Guest images: initramfs archives built without root, cached by content.

An image is two newc cpio archives that the kernel unpacks one after the other, uncompressed (gzip
costs the kernel up to 0.2 s of decompression under TCG, for a few MB of cache):
- the base image of a recipe (images/NAME/recipe.yaml + init + rootfs/): busybox, dropbear with its
  shared libraries, the lab's SSH keys, and the workloads of tests/ compiled statically;
- the modules a modular kernel needs (recipe's list and their dependencies), per kernel release.
The cpio writer below sets owners and modes itself, so nothing needs root or fakeroot.
"""

import dataclasses
import hashlib
import logging
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import cache as cache_mod
from .. import process
from ..config import Image, Lab, builtin, load_recipe
from ..errors import InfraError, UserError
from .kernel import KernelArtifacts
from .modules import load_order, load_waves, module_depends, module_name, read_module

log = logging.getLogger(__name__)

FORMAT = "4"  # bump when the image layout changes, so cached images are rebuilt
BUSYBOX = "/bin/busybox"


# --- newc cpio ---------------------------------------------------------------------------------


class CpioWriter:
    """Writes a newc ("070701") archive; all entries are owned by root."""

    def __init__(self, out):
        self._out = out
        self._ino = 1000
        self._seen = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: Tuple[int, int] = (0, 0)) -> None:
        name = name.lstrip("/")
        if name in self._seen:
            return
        self._seen.add(name)
        self._ino += 1
        fields = [self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + name.encode() + b"\0")
        self._pad(len(header) + len(name) + 1)
        self._out.write(data)
        self._pad(len(data))

    def _pad(self, n: int) -> None:
        self._out.write(b"\0" * (-n % 4))

    def dir(self, name: str, perm: int = 0o755) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | (perm if i == len(parts) else 0o755))

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        parent = os.path.dirname(name.strip("/"))
        if parent:
            self.dir(parent)
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        parent = os.path.dirname(name.strip("/"))
        if parent:
            self.dir(parent)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def close(self) -> None:
        self._entry("TRAILER!!!", 0)


def parse_ldd(text: str) -> List[str]:
    """Library paths from `ldd` output (the loader included, the vDSO not)."""
    libs = []
    for line in text.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if m:
            libs.append(m.group(1))
    return libs


# --- SSH keys ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Keys:
    client_key: Path  # OpenSSH private key labrunner logs in with
    client_pub: str
    host_key: Path  # dropbear-format host key baked into the image
    host_pub: str  # so the host key can be checked, not trusted on first use


def ensure_keys(state_dir: Path) -> Keys:
    """The lab's key pairs, made on first use: an ed25519 client key and a dropbear ed25519 host key."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Runs of a nightly start side by side on a fresh lab: one makes the keys, the others wait for them.
    with cache_mod.locked(state_dir / "keys", timeout=120, what="the lab's SSH keys"):
        return _make_keys(state_dir)


def _make_keys(state_dir: Path) -> Keys:
    client = state_dir / "id_ed25519"
    if not client.exists():
        from cryptography.hazmat.primitives import serialization  # 0.1-0.2 s of imports: only to make one
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        fd = os.open(client.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        client.with_suffix(".pub").write_bytes(pub + b" labrunner\n")
        os.replace(client.with_suffix(".tmp"), client)
    host = state_dir / "dropbear_ed25519_host_key"
    host_pub_file = host.with_suffix(".pub")
    if not host.exists():
        tmp = host.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        process.run(["dropbearkey", "-t", "ed25519", "-f", str(tmp)], timeout=30, what="making the host key")
        host_pub_file.unlink(missing_ok=True)
        os.replace(tmp, host)
    if not host_pub_file.exists():  # read once with dropbearkey, then from its file: every boot reads it
        out = process.run(["dropbearkey", "-y", "-f", str(host)], timeout=30, what="reading the host key")
        pub = next((line.strip() for line in out.splitlines() if line.startswith("ssh-ed25519 ")), None)
        if pub is None:
            raise InfraError(f"dropbearkey -y printed no ssh-ed25519 key for {host}")
        cache_mod.write_atomic(host_pub_file, (pub + "\n").encode())
    return Keys(client, client.with_suffix(".pub").read_text().strip(), host, host_pub_file.read_text().strip())


# --- the base image ----------------------------------------------------------------------------


def _sha(h, label: str, data: bytes) -> None:
    h.update(f"{label}\0{len(data)}\0".encode())
    h.update(data)


def _tree_files(root: Path) -> List[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def _host_files(binaries: Iterable[str]) -> Dict[str, Path]:
    """Guest path -> host file, for the recipe's binaries and every shared library they load."""
    files: Dict[str, Path] = {}
    for binary in binaries:
        path = Path(binary)
        if not path.is_file():
            raise InfraError(f"{binary} is missing on this host (run 'make setup')")
        files[f"/bin/{path.name}"] = path
        out = process.run(["ldd", str(path)], timeout=30, what=f"ldd {binary}") if _is_dynamic(path) else ""
        for lib in parse_ldd(out):
            files[lib] = Path(lib).resolve()
    return files


def _is_dynamic(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return b"ld-linux" in head  # the ELF interpreter string is near the start


def _gcc_version() -> str:
    return process.run(["gcc", "--version"], timeout=30, what="gcc --version").splitlines()[0]


def image_key(lab: Lab, image: Image, keys: Keys) -> Tuple[str, Dict[str, Path]]:
    """The content hash of IMAGE: recipe, tests, host binaries, keys and compiler."""
    recipe = load_recipe(image.recipe / "recipe.yaml")
    host = _host_files(recipe["binaries"])
    h = hashlib.sha256(f"labrunner-image-{FORMAT}".encode())
    # By content and name within the recipe or tests/, never by where the lab's folder is.
    files = [(f"recipe/{p.relative_to(image.recipe)}", p) for p in _tree_files(image.recipe)]
    files += [(f"tests/{rel}", p) for rel, p in sorted(guest_tests(lab).items())]
    for label, path in files:
        data = path.read_bytes()
        _sha(h, label + oct(guest_mode(path, data)), data)
    for guest_path, path in sorted(host.items()):
        _sha(h, guest_path, path.read_bytes())
    _sha(h, "keys", (keys.client_pub + keys.host_pub).encode())
    _sha(h, "gcc", _gcc_version().encode())
    return h.hexdigest()[:16], host


def guest_mode(path: Path, data: bytes) -> int:
    """Executable in the guest when it is on the host, or is a script: an installed package or a copy
    may have lost the bit, and the image must not change with it."""
    return 0o755 if data.startswith(b"#!") or os.access(path, os.X_OK) else 0o644


def guest_tests(lab: Lab) -> Dict[Path, Path]:
    """/lab/tests/REL -> the file: the built-in tests, then the lab's own tests/, whose test folders
    replace built-in ones of the same name."""
    out: Dict[Path, Path] = {}
    for folder in lab.tests_dirs:
        files = {path.relative_to(folder): path for path in _tree_files(folder)}
        tops = {rel.parts[0] for rel in files}
        out = {rel: p for rel, p in out.items() if rel.parts[0] not in tops}
        out.update(files)
    return out


def _compile(source: Path, out_dir: Path, label: str, progress: Callable[[str], None]) -> bytes:
    """SOURCE compiled statically (the guest has no libc); a compile error is the user's to fix. The
    built-in tests' lib/ is on the include path, so a lab's own workload can use tinyvm.h too."""
    exe = out_dir / label.replace("/", "_")
    progress(f"compiling {label}")
    argv = ["gcc", "-static", "-O2", "-Wall", "-pthread", "-I", str(builtin.TESTS / "lib"), "-o", str(exe),
            str(source)]
    try:
        process.run(argv, timeout=300, what=f"compiling {label}")
    except InfraError as e:
        raise UserError(str(e)) from None
    return exe.read_bytes()


def _guest_programs(lab: Lab, image: Image, out_dir: Path, progress: Callable[[str], None]) -> Dict[str, Tuple[bytes, int]]:
    """Guest path -> (content, mode): the recipe's src/*.c as /bin tools; tests/ under /lab/tests, C
    sources compiled (headers are only included), other files as they are."""
    files: Dict[str, Tuple[bytes, int]] = {}
    for path in _tree_files(image.recipe / "src"):
        if path.suffix == ".c":
            files[f"/bin/{path.stem}"] = (_compile(path, out_dir, f"{image.name}/src/{path.name}", progress), 0o755)
    for rel, path in sorted(guest_tests(lab).items()):
        if path.suffix == ".c":
            files[f"/lab/tests/{rel.with_suffix('')}"] = (_compile(path, out_dir, f"tests/{rel}", progress), 0o755)
        elif path.suffix != ".h":
            data = path.read_bytes()
            files[f"/lab/tests/{rel}"] = (data, guest_mode(path, data))
    return files


def _busybox_applets() -> List[str]:
    out = process.run([BUSYBOX, "--list-full"], timeout=30, what="busybox --list-full")
    return sorted({Path(line.strip()).name for line in out.splitlines() if line.strip()})


def build_base(lab: Lab, image: Image, cache: Path, progress: Callable[[str], None]) -> Path:
    """The base archive of IMAGE, built once per content hash."""
    keys = ensure_keys(lab.state_dir)
    key, host_files = image_key(lab, image, keys)
    out = cache / "images" / f"{image.name}-{key}.cpio"
    if out.exists():
        return out
    return cache_mod.get_or_build(cache, out, lambda staging: _write_base(lab, image, keys, host_files, staging,
                                                                          progress))


def _write_base(lab: Lab, image: Image, keys: Keys, host_files: Dict[str, Path], staging: Path,
                progress: Callable[[str], None]) -> None:
    progress(f"building image {image.name}")
    with tempfile.TemporaryDirectory(prefix="labrunner-image-") as tmp:
        programs = _guest_programs(lab, image, Path(tmp), progress)
        with open(staging, "wb") as f:
            w = CpioWriter(f)
            for d in ("dev", "proc", "sys", "tmp", "run", "root", "etc", "lab", "lib", "var/run"):
                w.dir(d, 0o1777 if d == "tmp" else 0o755)
            w.chardev("dev/console", 5, 1)
            w.chardev("dev/null", 1, 3, 0o666)
            # A merged /usr: every applet in /bin, whatever PATH a login or dropbear sets.
            for link in ("sbin", "usr/bin", "usr/sbin"):
                w.symlink(link, "/bin")
            for guest_path, host_path in sorted(host_files.items()):
                w.file(guest_path, host_path.read_bytes(), 0o755)
            for applet in _busybox_applets():
                w.symlink(f"bin/{applet}", "busybox")
            w.file("init", (image.recipe / "init").read_bytes(), 0o755)
            for guest_path, (data, mode) in sorted(programs.items()):
                w.file(guest_path, data, mode)
            for path in _tree_files(image.recipe / "rootfs"):
                rel = path.relative_to(image.recipe / "rootfs")
                data = path.read_bytes()
                w.file(str(rel), data, guest_mode(path, data))
            w.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
            w.file("etc/group", b"root:x:0:\n")
            w.file("etc/shells", b"/bin/sh\n")
            w.dir("root/.ssh", 0o700)
            w.file("root/.ssh/authorized_keys", keys.client_pub.encode() + b"\n", 0o600)
            w.file("etc/dropbear/dropbear_ed25519_host_key", keys.host_key.read_bytes(), 0o600)
            w.close()


# --- kernel modules (modules.py reads them) ------------------------------------------------------

def build_modules(kernel: KernelArtifacts, modules: List[str], cache: Path) -> Optional[Path]:
    """The archive of MODULES (and their dependencies) for KERNEL, or None for a kernel without modules."""
    if kernel.modules is None or not modules:
        return None
    h = hashlib.sha256(f"{FORMAT}\0{kernel.source}\0{kernel.release}\0{','.join(modules)}".encode())
    out = cache / "images" / f"modules-{kernel.release}-{h.hexdigest()[:16]}.cpio"
    if out.exists():
        return out
    index = {module_name(p): p for p in kernel.modules.rglob("*.ko*")}  # 0.1 s on Debian's 4000 files
    contents: Dict[str, bytes] = {}
    deps: Dict[str, List[str]] = {}

    def depends(name: str) -> Optional[List[str]]:
        if name not in index:
            return None
        contents[name] = read_module(index[name])
        deps[name] = module_depends(contents[name])
        return deps[name]

    order = load_order(modules, depends)
    base = f"lib/modules/{kernel.release}"

    def write(staging: Path) -> None:
        with open(staging, "wb") as f:
            w = CpioWriter(f)
            w.dir(base)
            for name in order:
                w.file(f"{base}/{name}.ko", contents[name])
            waves = load_waves(order, deps)
            w.file(f"{base}/load.order", "".join(f"{wave} {name}.ko\n" for wave, name in waves).encode())
            w.close()
    return cache_mod.get_or_build(cache, out, write)


def initrd(lab: Lab, image: Image, kernel: KernelArtifacts, cache: Path,
           progress: Callable[[str], None] = lambda s: None) -> Path:
    """The initrd for IMAGE on KERNEL: the base archive followed by the modules archive, if any."""
    base = build_base(lab, image, cache, progress)
    mods = build_modules(kernel, load_recipe(image.recipe / "recipe.yaml")["modules"], cache)
    return base if mods is None else joined(cache, f"{image.name}-{kernel.release}", [base, mods])


def joined(cache: Path, name: str, archives: Sequence[Path]) -> Path:
    """ARCHIVES one after the other, as one initrd (the kernel unpacks each in turn), cached."""
    key = hashlib.sha256("\0".join(a.name for a in archives).encode()).hexdigest()[:16]
    out = cache / "images" / f"initrd-{name}-{key}.cpio"

    def write(staging: Path) -> None:
        with open(staging, "wb") as f:
            for a in archives:
                f.write(a.read_bytes())
    return cache_mod.get_or_build(cache, out, write)
