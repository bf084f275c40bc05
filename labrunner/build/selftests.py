"""The kernel's own KVM selftests (tools/testing/selftests/kvm), built from the tree of the kernel under
test, statically linked, and packed for the guest as one more initramfs archive beside the image's, so
the image itself is not rebuilt.

- Built once per kernel build key (source tree, patches, config inputs, compiler): `make headers` in
  the kernel's warm build directory, then the selftests' own Makefile with OUTPUT= outside the tree
  and `-k`, so one selftest that does not build on some kernel does not cost the others.
- Kept stripped in the cache (about 1 MB each). A run's archive holds the selftests it runs, under
  /lab/selftests/kvm/, and their plan (/lab/selftests/plan: name, timeout, arguments, one per line),
  which the guest's run.sh reads.
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

from .. import cache as cache_mod
from .. import process
from ..config import Kernel
from ..config.tests import Selftest
from ..errors import BuildError, UserError
from . import kbuild
from .image import CpioWriter


SUITE = "tools/testing/selftests/kvm"
BUILD_TIMEOUT = 1800
GUEST_DIR = "lab/selftests/kvm"
PLAN = "lab/selftests/plan"


def headers_argv(src: Path, out: Path) -> List[str]:
    return ["make", "-C", str(src), f"O={out}", "headers"]


def make_argv(src: Path, out: Path, dest: Path, jobs: int) -> List[str]:
    """The selftests' Makefile, with the kernel's own UAPI headers and static binaries in DEST."""
    return ["make", "-C", str(src / SUITE), f"OUTPUT={dest}", f"KHDR_INCLUDES=-isystem {out}/usr/include",
            "LDFLAGS=-static", "-k", f"-j{jobs}"]


def _is_program(path: Path) -> bool:
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def build(kernel: Kernel, cache: Path, progress: Callable[[str], None] = lambda s: None) -> Path:
    """The folder of KERNEL's KVM selftests (relative names such as x86_64/svm_vmcall_test), built
    once per kernel build key; for a kernel without a tree, from its selftests_source's."""
    if kernel.kind != "source":
        if kernel.selftests_source is None:
            raise UserError(f"kernel '{kernel.name}' is a {kernel.kind} kernel, without a source tree here: the KVM "
                            "selftests are built from the tree of the kernel under test; run them on a source "
                            f"kernel such as stable-debug, or give '{kernel.name}' a selftests_source: (a source "
                            "kernel of the same version) in lab.yaml")
        kernel = kernel.selftests_source
    p = kbuild.plan(kernel, cache, progress)
    dest = cache / "selftests" / f"kvm-{kernel.name}-{p.key}"

    def make(staging: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="labrunner-selftests-") as tmp, \
                kbuild.source_tree(kernel, p, progress) as (src, out):
            log_path, objs = Path(tmp) / "build.log", Path(tmp) / "kvm"

            def step(argv: List[str], what: str) -> Tuple[int, str]:
                progress(f"building: {what}")
                status, stdout, stderr = process.call(argv, timeout=BUILD_TIMEOUT, what=what)
                with open(log_path, "a") as f:
                    f.write(f"$ {process.command_line(argv)}\n{stdout}{stderr}")
                return status, stdout + stderr

            status, output = step(headers_argv(src, out), "make headers")
            if status != 0:
                raise BuildError(f"make headers failed for kernel '{kernel.name}':\n{output[-1500:]}")
            # (with -k: a selftest that fails to build is named when a run asks for it)
            step(make_argv(src, out, objs, (os.cpu_count() or 1) + 1), "KVM selftests")
            staging.mkdir()
            programs = [f for f in sorted(objs.rglob("*")) if _is_program(f)]
            if not programs:
                raise BuildError(f"no KVM selftest built for kernel '{kernel.name}':\n{log_path.read_text()[-1500:]}")
            for program in programs:
                target = staging / program.relative_to(objs)
                target.parent.mkdir(parents=True, exist_ok=True)
                process.run(["strip", "-o", str(target), str(program)], timeout=60, what=f"strip {program.name}")
            shutil.copy2(log_path, staging / "build.log")
    return cache_mod.get_or_build(cache, dest, make)


def available(built: Path) -> List[str]:
    return sorted(str(p.relative_to(built)) for p in built.rglob("*") if _is_program(p))


def plan_text(selftests: Sequence[Selftest]) -> str:
    """The plan run.sh reads: "NAME<TAB>TIMEOUT<TAB>ARGS" per line, in order."""
    return "".join(f"{t.name}\t{t.timeout}\t{t.args}\n" for t in selftests)


def archive(built: Path, selftests: Sequence[Selftest], cache: Path) -> Path:
    """The initramfs archive of SELFTESTS (from BUILT) and their plan; those to skip are left out."""
    selftests = [t for t in selftests if t.skip is None]
    have = set(available(built))
    missing = [t.name for t in selftests if t.name not in have]
    if missing:
        raise UserError(f"no KVM selftest {', '.join(missing)} in {built.name} (it has {len(have)}, such as "
                        f"{', '.join(sorted(have)[:6])}; its build log: {built / 'build.log'})")
    plan = plan_text(selftests)
    key = hashlib.sha256(f"{built.name}\0{plan}".encode()).hexdigest()[:16]
    out = cache / "images" / f"selftests-{key}.cpio"

    def write(staging: Path) -> None:
        with open(staging, "wb") as f:
            w = CpioWriter(f)
            for name in dict.fromkeys(t.name for t in selftests):
                w.file(f"{GUEST_DIR}/{name}", (built / name).read_bytes(), perm=0o755)
            w.file(PLAN, plan.encode())
            w.close()
    return cache_mod.get_or_build(cache, out, write)
