#!/usr/bin/env python3
"""Benchmark: `labrunner boot -- uname -r` against bare QEMU and against virtme-ng, in one run.

- labrunner: the real CLI, warm caches (kernel fetched, image built, accelerator probed).
- bare QEMU: the same kernel, machine (CPUs, memory, accelerator, lpj) and QEMU, with a busybox-only
  initramfs whose init runs `uname -r` and powers off: the floor for booting this kernel at all.
- virtme-ng: `vng --run KERNEL --disable-kvm --disable-microvm -- uname -r`, installed from PyPI into
  bench/out/vng-venv; if it cannot run here, the reason is reported instead of a figure.

Runs alternate between the three so that load on the host hits them alike; medians are reported.
virtme-ng needs file(1); it is installed with apt-get when missing (as root), or the reason reported.
Usage: .venv/bin/python bench/boot.py [--runs N] [--kernel NAME]   (writes bench/out/boot-NAME.json)
"""

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labrunner import config  # noqa: E402
from labrunner.build import image, kernel  # noqa: E402
from labrunner.machine import qemu  # noqa: E402

OUT = REPO / "bench" / "out"


def bare_initrd(path: Path) -> Path:
    with gzip.open(path, "wb") as gz:
        w = image.CpioWriter(gz)
        w.dir("proc")
        w.dir("dev")
        w.chardev("dev/console", 5, 1)
        w.file("bin/busybox", Path(image.BUSYBOX).read_bytes(), 0o755)
        for applet in ("sh", "mount", "uname", "poweroff"):
            w.symlink(f"bin/{applet}", "busybox")
        w.file("init", b"#!/bin/sh\nmount -t proc proc /proc\nuname -r\npoweroff -f\n", 0o755)
        w.close()
    return path


def timed(argv, expect: str, timeout: float = 300):
    env = {**os.environ, "PATH": f"{Path(argv[0]).parent}{os.pathsep}{os.environ['PATH']}"}  # vng runs virtme-run
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    elapsed = time.monotonic() - t0
    if expect not in p.stdout + p.stderr:
        raise RuntimeError(f"{argv[0]} exited {p.returncode} without '{expect}':\n{p.stdout[-500:]}\n{p.stderr[-1500:]}")
    return elapsed, p.returncode


def virtme_ng() -> Path:
    if shutil.which("file") is None:  # vng reads the kernel image's type with file(1)
        subprocess.run(["apt-get", "install", "-y", "-q", "file"], check=True, stdout=subprocess.DEVNULL)
    venv = OUT / "vng-venv"
    vng = venv / "bin" / "vng"
    if not vng.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "virtme-ng"], check=True)
    return vng


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", help="kernel name from lab.yaml (default: defaults.kernel)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    lab = config.load(REPO / "lab.yaml")
    k = kernel.resolve(lab.pick("kernels", args.kernel), lab.cache_dir)
    machine = lab.pick("machines", None)
    accel = qemu.choose_accel(lab.qemu, k.image, lab.cache_dir)
    initrd = bare_initrd(OUT / "bare-initrd.cpio.gz")
    bare = [lab.qemu.binary, "-machine", machine.machine_type, "-accel", accel.name,
            "-cpu", machine.cpu_model[accel.name], "-smp", f"{machine.cpus}", "-m", f"{machine.memory_mib}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", str(k.image), "-initrd", str(initrd),
            "-append", qemu.kernel_cmdline(machine, accel.name, "rdinit=/init")]
    ours = [str(REPO / ".venv" / "bin" / "labrunner"), "--lab", str(REPO / "lab.yaml"), "boot", "--kernel", k.name,
            "--", "uname", "-r"]
    contenders = {"labrunner": ours, "bare QEMU": bare}
    notes = {}
    try:
        vng = virtme_ng()
        # -v: with Debian's modular kernel vng finds no virtio-serial for its script channel and falls
        # back to the console (and exits 255); the boot itself is complete, so it is timed all the same.
        contenders["virtme-ng"] = [str(vng), "-v", "--run", str(k.image), "--disable-kvm", "--disable-microvm",
                                   "--", "uname", "-r"]
    except (subprocess.CalledProcessError, OSError) as e:
        notes["virtme-ng"] = f"not installed: {e}"

    timed(ours, k.release)  # warm-up: caches and page cache
    times = {name: [] for name in contenders}
    for _ in range(args.runs):
        for name, argv in list(contenders.items()):
            try:
                elapsed, status = timed(argv, k.release)
                times[name].append(elapsed)
                if status != 0:
                    notes[name] = f"printed the release but exited {status}"
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                notes[name] = f"failed: {str(e).strip().splitlines()[-1][:300]}"
                del contenders[name]
                times.pop(name)
    medians = {name: statistics.median(t) for name, t in times.items() if t}
    result = {
        "date": time.strftime("%Y-%m-%d"), "kernel": k.release, "accel": accel.name, "runs": args.runs,
        "median_s": {n: round(v, 2) for n, v in medians.items()},
        "all_s": {n: [round(x, 2) for x in t] for n, t in times.items()},
        "ratio_to_bare": {n: round(v / medians["bare QEMU"], 2) for n, v in medians.items()},
        "notes": notes,
    }
    (OUT / f"boot-{k.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"boot -- uname -r, {k.release}, {accel.name}, median of {args.runs} ({result['date']})")
    for name, v in medians.items():
        print(f"  {name:10s} {v:6.2f} s  {result['ratio_to_bare'][name]:.2f}x bare")
    for name, note in notes.items():
        print(f"  {name:10s} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
