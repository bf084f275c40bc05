"""Kernel builds against a fake kernel tree: a git repository whose Makefile and merge_config.sh are a
few lines of shell. The real build is exercised end to end by the injected-kernel tests."""
import os
import struct
import subprocess
import sys
import textwrap

import pytest

from labrunner.build import kbuild
from labrunner.config import Kernel, SourceRecipe
from labrunner.errors import BuildError, UserError

from .conftest import REPO

MERGE_CONFIG = """\
#!/bin/sh
# fake merge_config.sh -O OUT BASE FRAGMENTS...: the base and the fragments, minus options a marker drops
out=$2; shift 2
mkdir -p "$out"
cat "$@" | grep -v -f dropped.txt > "$out/.config"
"""
MAKEFILE = """\
bzImage:
\t@if [ -e fail.txt ]; then echo "kernel/fake.c:1:1: error: fake failure"; exit 2; fi
\t@mkdir -p $(O)/arch/x86/boot
\t@cp bzImage.bin $(O)/arch/x86/boot/bzImage
\t@sleep $$(cat delay.txt)
\t@cat virt.c >> $(O)/arch/x86/boot/bzImage
\t@echo built > $(O)/System.map
\t@echo "  CC      kernel/fake.o"
"""


def _bzimage(release: str) -> bytes:
    data = bytearray(0x800)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x400)
    data[0x600:0x600 + len(release)] = release.encode()
    return bytes(data)


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def fake(tmp_path):
    tree = tmp_path / "linux"
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    (tree / "arch" / "x86" / "configs").mkdir(parents=True)
    (tree / "scripts" / "kconfig" / "merge_config.sh").write_text(MERGE_CONFIG)
    (tree / "scripts" / "kconfig" / "merge_config.sh").chmod(0o755)
    (tree / "arch" / "x86" / "configs" / "x86_64_defconfig").write_text("CONFIG_BASE=y\n")
    (tree / "Makefile").write_text(MAKEFILE)
    (tree / "bzImage.bin").write_bytes(_bzimage("6.99.0-fake"))
    (tree / "dropped.txt").write_text("NOTHING_IS_DROPPED\n")
    (tree / "virt.c").write_text("int x;\n")
    (tree / "delay.txt").write_text("0\n")  # seconds make takes between copying the image and finishing it
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "base")
    fragment = tmp_path / "kvm.config"
    fragment.write_text("CONFIG_KVM=y\n# CONFIG_SOUND is not set\n")

    def kernel(patches=(), optional=()):
        recipe = SourceRecipe(debian_package=None, tree=tree, ref="HEAD", patches=tuple(patches),
                              base_config="x86_64_defconfig", fragments=(fragment,), optional=tuple(optional))
        return Kernel(name="fake", kind="source", source=recipe)
    return tree, tmp_path / "cache", kernel


def _patch(tmp_path, name, old, new):
    p = tmp_path / name
    p.write_text(textwrap.dedent(f"""\
        diff --git a/virt.c b/virt.c
        --- a/virt.c
        +++ b/virt.c
        @@ -1 +1 @@
        -{old}
        +{new}
        """))
    return p


def test_build_then_cache_hit(fake, tmp_path):
    tree, cache, kernel = fake
    first = kbuild.build(kernel(), cache)
    assert first.bzimage.read_bytes()[0x202:0x206] == b"HdrS"
    assert (first.dir / ".config").read_text() == "CONFIG_BASE=y\nCONFIG_KVM=y\n# CONFIG_SOUND is not set\n"
    assert "CC      kernel/fake.o" in (first.dir / "build.log").read_text()
    (tree / "fail.txt").write_text("")  # would fail if it built again: it must come from the cache
    assert kbuild.build(kernel(), cache) == first
    assert kbuild.cached(kernel(), cache) == (first.key, first)


def test_the_cache_tells_a_build_of_the_recipe_as_it_stands_from_an_older_one(fake, tmp_path):
    tree, cache, kernel = fake
    assert kbuild.cached(kernel(), cache) == (None, None)  # nothing fetched: no key without a download
    first = kbuild.build(kernel(), cache)
    (tmp_path / "kvm.config").write_text("CONFIG_KVM=y\nCONFIG_OTHER=y\n")  # the recipe changes
    key, newest = kbuild.cached(kernel(), cache)
    assert newest == first and key != first.key and key == kbuild.plan(kernel(), cache).key
    (tmp_path / "kvm.config").write_text("CONFIG_KVM=y\n# CONFIG_SOUND is not set\n")  # back: its build is there
    variant = cache / "kernels" / "built" / f"{kernel().name}-bisect-0123456789abcdef"  # a bisection's, newer
    variant.mkdir()
    (variant / "bzImage").write_bytes(first.bzimage.read_bytes())
    assert kbuild.cached(kernel(), cache) == (first.key, first)


def test_a_patch_changes_the_key_and_applies(fake, tmp_path):
    _, cache, kernel = fake
    plain = kbuild.build(kernel(), cache)
    patched = kbuild.build(kernel([_patch(tmp_path, "p.diff", "int x;", "int y;")]), cache)
    assert patched.key != plain.key and patched.bzimage.is_file()


def test_old_warm_build_directories_are_removed(fake, tmp_path, monkeypatch):
    _, cache, kernel = fake
    monkeypatch.setattr(kbuild, "KEEP_WARM", 1)
    kbuild.build(kernel(), cache)
    warm = lambda: [d.name for d in (cache / "build").iterdir() if d.is_dir()]  # noqa: E731 (not the locks)
    first = warm()
    (tmp_path / "kvm.config").write_text("CONFIG_KVM=y\nCONFIG_OTHER=y\n")  # another config, another dir
    other = kbuild.build(kernel(), cache)
    assert warm() != first and len(first) == 1
    assert len(warm()) == 1 and other.bzimage.is_file()
    (tmp_path / "kvm.config").write_text("CONFIG_KVM=y\n# CONFIG_SOUND is not set\n")  # the first config again
    again = kbuild.build(kernel([_patch(tmp_path, "p.diff", "int x;", "int y;")]), cache)
    assert warm() == first and again.bzimage.is_file()


def test_a_patch_that_does_not_apply_names_itself(fake, tmp_path):
    _, cache, kernel = fake
    bad = _patch(tmp_path, "bad.diff", "int nothing;", "int y;")
    with pytest.raises(UserError, match=r"patch .*bad\.diff does not apply(.|\n)*virt\.c"):
        kbuild.build(kernel([bad]), cache)


def test_a_dropped_option_fails_unless_optional(fake):
    tree, cache, kernel = fake
    (tree / "dropped.txt").write_text("CONFIG_KVM\n")
    _git(tree, "commit", "-q", "-am", "drop KVM")
    with pytest.raises(UserError, match=r"CONFIG_KVM=y \(not set\)"):
        kbuild.build(kernel(), cache)
    assert kbuild.build(kernel(optional=["CONFIG_KVM"]), cache).bzimage.is_file()


def test_a_failed_build_shows_the_first_errors(fake):
    tree, cache, kernel = fake
    (tree / "fail.txt").write_text("")
    _git(tree, "add", "fail.txt")
    _git(tree, "commit", "-q", "-m", "break it")
    with pytest.raises(BuildError, match=r"kernel/fake\.c:1:1: error: fake failure"):
        kbuild.build(kernel(), cache)


def test_series_files_and_options():
    assert kbuild.read_options("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\nCONFIG_D=n\n") == \
        {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x"', "CONFIG_D": "n"}
    assert kbuild.dropped_options({"CONFIG_A": "y", "CONFIG_B": "n"}, {"CONFIG_A": "m"}, []) == \
        ["CONFIG_A=y (got CONFIG_A=m)"]


def test_series_file_lists_patches(tmp_path):
    (tmp_path / "a.patch").write_text("x")
    (tmp_path / "series").write_text("# comment\na.patch\n\n")
    assert kbuild.patch_files([tmp_path / "series"]) == [tmp_path / "a.patch"]
    with pytest.raises(UserError, match="does not exist"):
        kbuild.patch_files([tmp_path / "missing.patch"])


BUILD_ONE = """
import sys
from pathlib import Path
from labrunner.build import kbuild
from labrunner.config import Kernel, SourceRecipe
tree, fragment, cache, patch, name = map(Path, sys.argv[1:])
recipe = SourceRecipe(None, tree, "HEAD", (patch,), "x86_64_defconfig", (fragment,), ())
print(kbuild.build(Kernel(name=name.name, kind="source", source=recipe), cache).bzimage)
"""


def test_two_builds_at_once_each_get_their_own_kernel(fake, tmp_path):
    """Like two inject-* kernels built by a parallel nightly: one source, one config, so one warm
    directory, different patches. Each make is slow enough that, unlocked, the second checkout lands
    in the middle of the first build and one kernel is published under the other's key."""
    tree, cache, _ = fake
    (tree / "delay.txt").write_text("2\n")
    _git(tree, "commit", "-q", "-am", "slow make")
    procs = []
    for name, line in (("inject-a", "int a;"), ("inject-b", "int b;")):
        patch = _patch(tmp_path, f"{name}.diff", "int x;", line)
        argv = [sys.executable, "-c", BUILD_ONE, str(tree), str(tmp_path / "kvm.config"), str(cache), str(patch), name]
        procs.append((line, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                             env={**os.environ, "PYTHONPATH": str(REPO)})))
    for line, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        image = open(out.strip(), "rb").read()
        assert image.endswith(f"{line}\n".encode()), (line, image[-20:])
    assert len([d for d in (cache / "build").iterdir() if d.is_dir()]) == 1  # they did share it


def test_the_cache_is_private(fake):
    _, cache, kernel = fake
    built = kbuild.build(kernel(), cache)
    assert cache.stat().st_mode & 0o077 == 0
    for path in [built.dir, *(cache / "kernels" / "built").iterdir(), *(cache / "build").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path
