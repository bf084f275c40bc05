"""lab.yaml's `tests:` section: what a run does in the guest, for how long, with which vCPU hotplug
schedule (and which QEMU CPU properties plugged vCPUs get), which reports it ignores, and its timeouts."""

import dataclasses
import re
from typing import Dict, Optional, Tuple, Union

from .schema import REQUIRED, Ctx, Map, boolean, integer, kind, mapping, number, regex_list, string


@dataclasses.dataclass(frozen=True)
class Timeouts:
    boot: int
    ssh: int
    workload_grace: int
    hang: int


@dataclasses.dataclass(frozen=True)
class HotplugSpec:
    """The host's vCPU hotplug schedule: an action about every PERIOD_S seconds (randomised by SEED,
    random and recorded when None) on up to SLOTS of the machine's hot-pluggable slots.

    CPU_PROPS are QEMU CPU properties (("svm", False), ...) that a share CPU_PROPS_SHARE of the plugs
    get, drawn from the seed. EXPECT_ONLINE false: the guest should refuse to online such a vCPU (a
    kernel that checks a new CPU's compatibility before using it), so a refusal confirms the plug and
    an online is a hotplug failure."""
    period_s: float
    slots: int
    seed: Optional[int]
    confirm_timeout: int
    cpu_props: Tuple[Tuple[str, Union[bool, int, str]], ...] = ()
    cpu_props_share: float = 1.0
    expect_online: bool = True


@dataclasses.dataclass(frozen=True)
class Selftest:
    """One of the kernel's KVM selftests to run: its path under tools/testing/selftests/kvm (such as
    x86_64/svm_vmcall_test), its arguments and its time limit in seconds. EXPECT_FAIL: why it is known
    to fail here (a failure is then xfail); SKIP: why it is not run here; None for neither."""
    name: str
    args: str = ""
    timeout: int = 60
    expect_fail: Optional[str] = None
    skip: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Test:
    name: str
    kernel: Optional[str]
    machine: str
    image: str
    command: str
    duration: int
    cmdline: str
    env: Dict[str, str]
    hotplug: Optional[HotplugSpec]
    stop_on_first_splat: bool
    ignore_splats: Tuple[str, ...]
    timeouts: Timeouts
    selftests: Tuple[Selftest, ...] = ()  # the kernel's KVM selftests the workload runs (build.selftests)


def _timeouts(ctx: Ctx) -> Timeouts:
    return Timeouts(**mapping(ctx, {
        "boot": (integer(1), 300),
        "ssh": (integer(1), 60),
        "workload_grace": (integer(0), 120),
        "hang": (integer(5), 120),
    }))


def _cpu_props(ctx: Ctx) -> Tuple[Tuple[str, Union[bool, int, str]], ...]:
    """QEMU CPU properties, as device_add takes them: QMP wants a boolean property as true/false, so
    QEMU's command-line spelling "on"/"off" becomes one."""
    if not isinstance(ctx.node, dict) or not ctx.node:
        raise ctx.error(f"expected a mapping of QEMU CPU properties (e.g. svm: false), got {kind(ctx.node)}")
    out = []
    for key, value in ctx.node.items():
        if not re.fullmatch(r"[a-z][a-z0-9_.-]*", key):
            raise ctx.error("not a QEMU property name", key)
        if key in ("id", "driver", "socket-id", "core-id", "thread-id", "die-id", "module-id", "cluster-id"):
            raise ctx.error("set by the hotplug controller itself", key)
        if isinstance(value, str) and value in ("on", "off"):
            value = value == "on"
        elif not isinstance(value, (bool, int, str)):
            raise ctx.error(f"expected true/false, a number or a string, got {kind(value)}", key)
        out.append((key, value))
    return tuple(out)


def _share(ctx: Ctx) -> float:
    value = number(0.0)(ctx)
    if value > 1:
        raise ctx.error(f"a share of the plugs, from 0 to 1, got {ctx.node}")
    return value


def _hotplug(ctx: Ctx) -> HotplugSpec:
    f = mapping(ctx, {
        "period": (number(0.5), 4.0),
        "slots": (integer(1), 2),
        "seed": (integer(0), None),
        "confirm_timeout": (integer(1), 30),
        "cpu_props": (_cpu_props, ()),
        "cpu_props_share": (_share, 1.0),
        "expect_online": (boolean, True),
    })
    if not f["cpu_props"]:
        for key in ("cpu_props_share", "expect_online"):
            if key in ctx.node:
                raise ctx.error("applies to plugs with 'cpu_props', and there are none", key)
    return HotplugSpec(period_s=f["period"], slots=f["slots"], seed=f["seed"], confirm_timeout=f["confirm_timeout"],
                       cpu_props=f["cpu_props"], cpu_props_share=f["cpu_props_share"],
                       expect_online=f["expect_online"])


def _env(ctx: Ctx) -> Dict[str, str]:
    if not isinstance(ctx.node, dict):
        raise ctx.error(f"expected a mapping of NAME: value, got {kind(ctx.node)}")
    out = {}
    for key, value in ctx.node.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ctx.error("not a valid environment variable name", key)
        if isinstance(value, (dict, list)) or value is None:
            raise ctx.error("expected a string or a number", key)
        out[key] = str(value)
    return out


_SELFTEST = re.compile(r"(?:x86_64/)?\w+")


def _reasons(ctx: Ctx) -> Dict[str, str]:
    """NAME: why, for each selftest listed (expect_fail and skip must say why)."""
    if not isinstance(ctx.node, dict):
        raise ctx.error(f"expected a mapping of selftest: reason, got {kind(ctx.node)}")
    for key, value in ctx.node.items():
        if not isinstance(value, str) or not value.strip():
            raise ctx.error("give the reason, as a string", key)
    return dict(ctx.node)


def _selftests(ctx: Ctx) -> Tuple[Selftest, ...]:
    f = mapping(ctx, {"timeout": (integer(1), 60), "run": (lambda c: c, REQUIRED),
                      "expect_fail": (_reasons, {}), "skip": (_reasons, {})})
    run = ctx.child("run")
    if not isinstance(run.node, list) or not run.node:
        raise run.error("expected a list of selftests (a name, or {name, args, timeout})")
    out = []
    for i in range(len(run.node)):
        item = run.item(i)
        entry = mapping(item, {"name": (string, REQUIRED), "args": (string, ""), "timeout": (integer(1), f["timeout"])}) \
            if isinstance(item.node, dict) else {"name": string(item), "args": "", "timeout": f["timeout"]}
        if not _SELFTEST.fullmatch(entry["name"]):
            raise item.error(f"not a KVM selftest's name (NAME or x86_64/NAME): {entry['name']!r}")
        out.append(Selftest(expect_fail=f["expect_fail"].get(entry["name"]), skip=f["skip"].get(entry["name"]),
                            **entry))
    listed = {t.name for t in out}
    for key in ("expect_fail", "skip"):
        for name in f[key]:
            if name not in listed:
                raise ctx.child(key).error("not in the run list", name)
    return tuple(out)


def test(ctx: Ctx, name: str) -> Test:
    f = mapping(ctx, {
        "kernel": (string, None),
        "machine": (string, None),
        "image": (string, None),
        "command": (string, REQUIRED),
        "duration": (integer(1), 60),
        "cmdline": (string, ""),
        "env": (_env, {}),
        "hotplug": (_hotplug, None),
        "stop_on_first_splat": (boolean, False),
        "ignore_splats": (regex_list, ()),
        "timeouts": (_timeouts, None),
        "selftests": (_selftests, ()),
    })
    f["timeouts"] = f["timeouts"] or _timeouts(Ctx(ctx.path, "", Map(), 0))
    return Test(name=name, **f)
