"""lab.yaml's `tests:` section: what a run does in the guest, for how long, with which vCPU hotplug
schedule, which reports it ignores, and its timeouts."""

import dataclasses
import re
from typing import Dict, Optional, Tuple

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
    random and recorded when None) on up to SLOTS of the machine's hot-pluggable slots."""
    period_s: float
    slots: int
    seed: Optional[int]
    confirm_timeout: int


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


def _timeouts(ctx: Ctx) -> Timeouts:
    return Timeouts(**mapping(ctx, {
        "boot": (integer(1), 300),
        "ssh": (integer(1), 60),
        "workload_grace": (integer(0), 120),
        "hang": (integer(5), 120),
    }))


def _hotplug(ctx: Ctx) -> HotplugSpec:
    f = mapping(ctx, {
        "period": (number(0.5), 4.0),
        "slots": (integer(1), 2),
        "seed": (integer(0), None),
        "confirm_timeout": (integer(1), 30),
    })
    return HotplugSpec(period_s=f["period"], slots=f["slots"], seed=f["seed"], confirm_timeout=f["confirm_timeout"])


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
    })
    f["timeouts"] = f["timeouts"] or _timeouts(Ctx(ctx.path, "", Map(), 0))
    return Test(name=name, **f)
