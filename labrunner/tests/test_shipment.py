"""Kernels and run folders between lab hosts that share nothing: the archive, its digest, its install
into another cache, and the landing of run folders (lab.dask_executor.land); and a built kernel staged
for another process on this host."""
import dataclasses
import io
import json
import tarfile

import pytest

from labrunner.build import shipment
from labrunner.build.kernel import KernelArtifacts
from labrunner.errors import InfraError
from labrunner.lab.dask_executor import land
from labrunner.lab.executor import Job
from labrunner.lab.worker import pack_folder


def _kernel(tmp_path):
    tree = tmp_path / "tree"
    mods = tree / "lib" / "modules" / "6.12.0-lab"
    (mods / "kernel" / "arch").mkdir(parents=True)
    (mods / "kernel" / "arch" / "kvm.ko.xz").write_bytes(b"ko")
    (mods / "build").symlink_to("/usr/src/linux-headers-6.12.0-lab")  # as Debian packs it
    (tree / "bzImage").write_bytes(b"MZ" + bytes(600))
    (tree / "vmlinux").write_bytes(b"\x7fELF")
    return KernelArtifacts(name="k", image=tree / "bzImage", release="6.12.0-lab", source="source:abc",
                           modules=mods, vmlinux=tree / "vmlinux", commit="c0ffee", patchset_hash="ph")


def test_a_kernel_ships_by_content_and_boots_as_it_was(tmp_path):
    kernel = _kernel(tmp_path)
    digest, data = shipment.pack(kernel)
    assert shipment.pack(kernel)[0] == digest, "the same kernel, the same digest"
    cache = tmp_path / "other-host-cache"
    assert shipment.installed(cache, "k", digest) is None
    where = shipment.install(cache, "k", digest, data)
    assert shipment.installed(cache, "k", digest) == where
    got = shipment.load(where)
    assert (got.name, got.release, got.source, got.commit, got.patchset_hash) == \
        ("k", "6.12.0-lab", "source:abc", "c0ffee", "ph")
    assert got.image.read_bytes() == kernel.image.read_bytes() and got.vmlinux.read_bytes() == b"\x7fELF"
    assert (got.modules / "kernel" / "arch" / "kvm.ko.xz").read_bytes() == b"ko"
    assert not (got.modules / "build").is_symlink(), "a link to the packing host's headers is dropped"
    (kernel.vmlinux).write_bytes(b"\x7fELF2")
    assert shipment.pack(kernel)[0] != digest


def test_a_kernel_staged_for_another_process_loads_as_it_was(tmp_path):
    kernel = _kernel(tmp_path)
    where = shipment.stage(kernel, tmp_path / "staged")
    got = shipment.load(where)
    assert (got.name, got.release, got.commit, got.patchset_hash) == ("k", "6.12.0-lab", "c0ffee", "ph")
    assert got.image.read_bytes() == kernel.image.read_bytes() and got.vmlinux.read_bytes() == b"\x7fELF"
    no_vmlinux = shipment.stage(dataclasses.replace(kernel, vmlinux=None, commit="beef"), where)  # staged again
    assert shipment.load(no_vmlinux).vmlinux is None and shipment.load(no_vmlinux).commit == "beef"
    assert not (where / "vmlinux").exists()


def test_an_archive_that_is_not_what_it_claims_is_refused(tmp_path):
    digest, data = shipment.pack(_kernel(tmp_path))
    with pytest.raises(InfraError, match="does not match its digest"):
        shipment.install(tmp_path / "c", "k", digest, data[:-1] + b"x")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(InfraError, match="points outside"):
        shipment.unpack_archive(buf.getvalue(), tmp_path / "d", "test")
    assert not (tmp_path / "escape").exists()


def test_run_folders_land_whole_and_keep_their_names_apart(tmp_path):
    run = tmp_path / "worker" / "20261201-100146-kvm-smoke-k"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"id": run.name, "verdict": "pass"}))
    (run / "console.log").write_text("[    0.000000] Linux version 6.12\n" * 100)
    result = {"record": {"id": run.name}, "folder": pack_folder(run), "worker": "tcp://127.0.0.1:1"}
    assert len(result["folder"]) < 2 * 1024, "console logs compress"
    first, second = land(result, tmp_path / "runs"), land(result, tmp_path / "runs")
    assert first["id"] == run.name and second["id"] == run.name + "-2"
    assert json.loads((tmp_path / "runs" / second["id"] / "run.json").read_text())["id"] == second["id"]
    assert (tmp_path / "runs" / run.name / "console.log").read_text() == (run / "console.log").read_text()
    assert land({"record": {"id": None, "verdict": "error"}, "folder": None}, tmp_path / "runs")["verdict"] == "error"


def test_a_job_names_a_shipped_kernel_on_its_command_line(tmp_path):
    job = Job(lab=tmp_path / "lab.yaml", test="t", kernel="k", results=tmp_path, duration=None,
              stop_on_first_splat=False, timeout=60, kernel_artifacts=tmp_path / "shipped")
    argv = job.argv(["labrunner"])
    assert argv[argv.index("--kernel-artifacts") + 1] == str(tmp_path / "shipped")
