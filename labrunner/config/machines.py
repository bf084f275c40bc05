"""lab.yaml's `qemu:` and `machines:` sections: which QEMU, and the shape of each guest machine."""

import dataclasses
from typing import Dict, Tuple

from .schema import Ctx, choice, integer, mapping, memory, str_list, string

ACCELS = ("auto", "kvm", "tcg")


@dataclasses.dataclass(frozen=True)
class QemuConfig:
    binary: str
    accel: str
    extra_args: Tuple[str, ...]


DEFAULT_QEMU = QemuConfig("qemu-system-x86_64", "auto", ())


@dataclasses.dataclass(frozen=True)
class Machine:
    name: str
    machine_type: str
    cpus: int
    max_cpus: int
    memory_mib: int
    cpu_model: Dict[str, str]
    lpj: int
    tcg_plug_budget: int
    cmdline: str
    tcg_threads: str = "multi"  # "single": all vCPUs on one host thread (-accel tcg,thread=single)


def qemu(ctx: Ctx) -> QemuConfig:
    return QemuConfig(**mapping(ctx, {
        "binary": (string, DEFAULT_QEMU.binary),
        "accel": (choice(*ACCELS), DEFAULT_QEMU.accel),
        "extra_args": (str_list, ()),
    }))


def _cpu_model(ctx: Ctx) -> Dict[str, str]:
    return mapping(ctx, {"kvm": (string, "host"), "tcg": (string, "max")})


def machine(ctx: Ctx, name: str) -> Machine:
    f = mapping(ctx, {
        "machine_type": (string, "q35"),
        "cpus": (integer(1), 2),
        "max_cpus": (integer(1), None),
        "memory": (memory, 1024),
        "cpu_model": (_cpu_model, {"kvm": "host", "tcg": "max"}),
        "lpj": (integer(1), 5000000),
        "tcg_plug_budget": (integer(0), 64),
        "cmdline": (string, ""),
        "tcg_threads": (choice("multi", "single"), "multi"),
    })
    f["max_cpus"] = f["max_cpus"] or f["cpus"]
    if f["max_cpus"] < f["cpus"]:
        raise ctx.error(f"max_cpus ({f['max_cpus']}) is less than cpus ({f['cpus']})", "max_cpus")
    f["memory_mib"] = f.pop("memory")
    return Machine(name=name, **f)
