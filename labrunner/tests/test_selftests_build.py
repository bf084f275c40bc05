"""Building the KVM selftests (argv) and packing a run's archive, on a fake build folder."""

from pathlib import Path

import pytest

from labrunner import config
from labrunner.build import selftests
from labrunner.config.tests import Selftest
from labrunner.errors import UserError

from .conftest import GOOD


def test_argv_uses_the_kernels_own_headers_and_links_statically():
    src, out = Path("/c/src"), Path("/c/out")
    assert selftests.headers_argv(src, out) == ["make", "-C", "/c/src", "O=/c/out", "headers"]
    argv = selftests.make_argv(src, out, Path("/t/kvm"), 3)
    assert argv[:3] == ["make", "-C", "/c/src/tools/testing/selftests/kvm"]
    assert {"OUTPUT=/t/kvm", "KHDR_INCLUDES=-isystem /c/out/usr/include", "LDFLAGS=-static", "-k", "-j3"} <= set(argv)


def _fake_built(tmp_path) -> Path:
    built = tmp_path / "kvm-k-123"
    for name in ("hardware_disable_test", "x86_64/svm_vmcall_test", "x86_64/amx_test"):
        (built / name).parent.mkdir(parents=True, exist_ok=True)
        (built / name).write_bytes(b"\x7fELF" + name.encode())
        (built / name).chmod(0o755)
    (built / "build.log").write_text("log")
    return built


def test_an_archive_holds_the_selftests_run_and_their_plan(tmp_path):
    built = _fake_built(tmp_path)
    assert selftests.available(built) == ["hardware_disable_test", "x86_64/amx_test", "x86_64/svm_vmcall_test"]
    plan = [Selftest("x86_64/svm_vmcall_test", args="-v 2", timeout=90), Selftest("hardware_disable_test"),
            Selftest("x86_64/amx_test", skip="no AMX")]
    data = selftests.archive(built, plan, tmp_path / "cache").read_bytes()
    assert b"lab/selftests/kvm/x86_64/svm_vmcall_test\0" in data and b"\x7fELFx86_64/svm_vmcall_test" in data
    assert b"lab/selftests/kvm/hardware_disable_test" in data and b"amx_test" not in data
    assert b"x86_64/svm_vmcall_test\t90\t-v 2\nhardware_disable_test\t60\t\n" in data
    assert selftests.archive(built, plan, tmp_path / "cache").read_bytes() == data  # cached, same bytes


def test_a_selftest_that_did_not_build_is_named(tmp_path):
    with pytest.raises(UserError, match=r"no KVM selftest rseq_test in kvm-k-123 \(it has 3, such as "
                                        r"hardware_disable_test.*build log"):
        selftests.archive(_fake_built(tmp_path), [Selftest("rseq_test")], tmp_path / "cache")


def test_a_kernel_without_source_is_a_usage_error_naming_it(write_lab, tmp_path):
    lab = config.load(write_lab(GOOD))
    with pytest.raises(UserError, match=r"kernel 'k' is a path kernel, without a source tree"):
        selftests.build(lab.kernels["k"], tmp_path)


def test_a_kernel_without_a_tree_builds_them_from_its_selftests_source(write_lab, tmp_path, monkeypatch):
    lab = config.load(write_lab(GOOD))
    asked = []

    def plan(kernel, cache, progress):
        asked.append(kernel.name)
        raise UserError("stop here")
    monkeypatch.setattr(selftests.kbuild, "plan", plan)
    with pytest.raises(UserError, match="stop here"):
        selftests.build(lab.kernels["debian-6.12"], tmp_path)
    assert asked == ["stable-debug"]
