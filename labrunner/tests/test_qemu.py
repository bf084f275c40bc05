import time
from pathlib import Path

import pytest

from labrunner.machine import qemu
from labrunner.config import Machine, QemuConfig

MACHINE = Machine(name="m", machine_type="q35", cpus=2, max_cpus=4, memory_mib=1024,
                  cpu_model={"kvm": "host", "tcg": "max"}, lpj=5000000, tcg_plug_budget=8, cmdline="quiet")
QEMU = QemuConfig(binary="qemu-system-x86_64", accel="auto", extra_args=("-d", "guest_errors"))


def test_cmdline_has_lpj_only_under_tcg():
    assert qemu.kernel_cmdline(MACHINE, "tcg", "kvm.enable_virt_at_load=0") == \
        "console=ttyS0 panic=-1 lpj=5000000 quiet kvm.enable_virt_at_load=0"
    assert qemu.kernel_cmdline(MACHINE, "kvm") == "console=ttyS0 panic=-1 quiet"


def test_machine_argv_tcg():
    argv = qemu.machine_argv(qemu=QEMU, machine=MACHINE, accel=qemu.Accel("tcg", "why"), kernel=Path("/k"),
                             initrd=Path("/i"), cmdline="console=ttyS0", sockdir=Path("/s"), ssh_port=2222)
    assert argv == [
        "qemu-system-x86_64", "-name", "labrunner", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
        "-smp", "cpus=2,maxcpus=12,sockets=12,cores=1,threads=1", "-m", "1024M",
        "-device", "max-x86_64-cpu,id=lab-cpu2,socket-id=2,core-id=0,thread-id=0",
        "-device", "max-x86_64-cpu,id=lab-cpu3,socket-id=3,core-id=0,thread-id=0",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-chardev", "socket,id=con0,path=/s/console.sock,server=on,wait=on", "-serial", "chardev:con0",
        "-qmp", "unix:/s/qmp.sock,server=on,wait=off",
        "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22", "-device", "virtio-net-pci,netdev=net0",
        "-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0", "-d", "guest_errors",
    ]


def test_machine_argv_kvm_without_network_or_initrd():
    argv = qemu.machine_argv(qemu=QEMU, machine=MACHINE, accel=qemu.Accel("kvm", "why"), kernel=Path("/k"),
                             initrd=None, cmdline="c", sockdir=Path("/s"), ssh_port=None)
    assert argv[argv.index("-cpu") + 1] == "host"
    # No TCG context budget under KVM; the hot-pluggable vCPUs are host CPUs.
    assert argv[argv.index("-smp") + 1] == "cpus=2,maxcpus=4,sockets=4,cores=1,threads=1"
    assert "host-x86_64-cpu,id=lab-cpu3,socket-id=3,core-id=0,thread-id=0" in argv
    assert "-netdev" not in argv and "-initrd" not in argv
    assert "-no-reboot" in argv


def test_decide_accel():
    assert qemu.decide_accel("tcg", "ok", None).name == "tcg"
    assert qemu.decide_accel("kvm", "no /dev/kvm", None) == qemu.Accel("kvm", "lab.yaml asks for kvm")
    assert qemu.decide_accel("auto", "no /dev/kvm", None) == qemu.Accel("tcg", "no /dev/kvm")
    broken = qemu.decide_accel("auto", "ok", "KVM internal error (emulation failure) while booting")
    assert broken.name == "tcg" and "exists but QEMU cannot run a kernel with it: KVM internal" in broken.reason
    assert qemu.decide_accel("auto", "ok", None).name == "kvm"


def test_probe_boots_the_kernel_under_kvm_without_root():
    argv = qemu.probe_argv("qemu-system-x86_64", Path("/k"))
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-kernel") + 1] == "/k"
    assert "-initrd" not in argv and "-no-reboot" in argv
    assert "panic=-1" in argv[argv.index("-append") + 1]


@pytest.mark.parametrize("script, said", [
    ("sleep 30", "the kernel printed nothing within 0.5 s"),  # stuck before any output, as on this host
    ("echo Linux version; sleep 30", "the kernel did not reach its root-mount panic within 3 s"),
    ("echo Linux version; echo 'Kernel panic - not syncing: VFS: Unable to mount root fs'; sleep 30", None),
])
def test_the_probe_says_what_kvm_did_and_a_silent_kernel_costs_little(tmp_path, script, said):
    fake = tmp_path / "qemu"  # a stand-in for QEMU's console output
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    t0 = time.monotonic()
    assert qemu.run_probe(str(fake), Path("/k"), timeout=3, silence=0.5) == said
    if said is None or "nothing" in said:
        assert time.monotonic() - t0 < 2.5  # it ended there, not at its timeout


def test_kvm_device_state(tmp_path):
    assert qemu.kvm_device_state(str(tmp_path / "kvm")).startswith("no ")


def test_single_threaded_tcg_is_an_accel_option():
    import dataclasses
    tcg = qemu.Accel("tcg", "test")
    assert qemu.accel_arg(MACHINE, tcg) == "tcg"
    assert qemu.accel_arg(dataclasses.replace(MACHINE, tcg_threads="single"), tcg) == "tcg,thread=single"
    assert qemu.accel_arg(dataclasses.replace(MACHINE, tcg_threads="single"), qemu.Accel("kvm", "x")) == "kvm"


def test_qemu_version_is_asked_once_per_binary(tmp_path):
    calls = tmp_path / "calls"
    binary = tmp_path / "qemu-system-x86_64"
    binary.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1)'\n")
    binary.chmod(0o755)
    cache = tmp_path / "cache"
    assert [qemu.version(str(binary), cache) for _ in range(3)] == ["10.0.2"] * 3
    assert calls.read_text().count("x") == 1
    binary.write_text(binary.read_text().replace("10.0.2", "10.1.0") + "# upgraded\n")  # a new binary
    assert qemu.version(str(binary), cache) == "10.1.0" and calls.read_text().count("x") == 2
    assert qemu.version(str(binary)) == "10.1.0" and calls.read_text().count("x") == 3  # no cache: asked
