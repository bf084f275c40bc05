"""lab.yaml as a whole: read on top of the built-in lab (builtin.py), its sections, `defaults:`, the
references between them, and where the lab keeps its results, cache and state.

Named sections (machines, kernels, images, tests, suites) merge by entry name, the user's entry
replacing the built-in one; `defaults:` merges key by key; any other section given replaces the
built-in one. An error names the file and line of the entry at fault, whichever file that is."""

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import ConfigError
from . import builtin
from . import images as images_mod
from . import kernels as kernels_mod
from . import machines as machines_mod
from . import suites as suites_mod
from . import tests as tests_mod
from .images import Image
from .kernels import Kernel
from .machines import DEFAULT_QEMU, Machine, QemuConfig
from .schema import Ctx, integer, load_yaml, mapping, named, string
from .reports import Reports, reports
from .suites import KnownIssue, Suite
from .tests import Test


@dataclasses.dataclass(frozen=True)
class Defaults:
    kernel: str
    machine: str
    image: str
    test: str
    suite: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Lab:
    path: Path
    root: Path
    qemu: QemuConfig
    machines: Dict[str, Machine]
    kernels: Dict[str, Kernel]
    images: Dict[str, Image]
    tests: Dict[str, Test]
    defaults: Defaults
    suites: Dict[str, Suite] = dataclasses.field(default_factory=dict)
    known_issues: Tuple[KnownIssue, ...] = ()
    slots: Optional[int] = None  # guests at once; None: derived from the host (lab.executor)
    scheduler: Optional[str] = None  # a dask scheduler's address: nightlies run on its cluster
    retries: int = 1  # more runs of a cell that ended in an infrastructure error or a hang without report
    notify: Optional[str] = None  # a command given a nightly's comparison, when something is new
    reports: Reports = Reports()

    @property
    def tests_dirs(self) -> Tuple[Path, ...]:
        """What the guest gets as /lab/tests: the built-in tests, then the lab's own tests/ beside its
        lab.yaml (a test folder of the same name replaces the built-in one)."""
        own = self.root / "tests"
        return (builtin.TESTS,) + ((own,) if own.is_dir() and own.resolve() != builtin.TESTS else ())

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    @property
    def cache_dir(self) -> Path:
        """Downloaded kernels, built images, probe results: $LABRUNNER_CACHE, else the user's cache."""
        env = os.environ.get("LABRUNNER_CACHE")
        if env:
            return Path(env)
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labrunner"

    @property
    def state_dir(self) -> Path:
        """The user's SSH key pair for the guests, beside the cache: the same for every lab, so that
        images of the same contents have the same key wherever their lab.yaml is."""
        return self.cache_dir / "ssh"

    def file_hash(self) -> str:
        """lab.yaml's own hash: what a nightly records, and what lab hosts of a cluster must share."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    def pick(self, section: str, name: Optional[str]):
        """The entry NAME of SECTION, or the default one; a clear error for unknown names."""
        table = getattr(self, section)
        name = name or getattr(self.defaults, section.rstrip("s"))
        if name not in table:
            raise ConfigError(self.path, 0, f"{section}.{name}",
                              f"no such entry; known: {', '.join(sorted(table)) or 'none'}")
        return table[name]


def _layer(path: Path, root: Path, inherited: Dict[str, Kernel]) -> Tuple[Ctx, Dict[str, Any]]:
    """One lab.yaml's sections, each checked by the module that owns its schema; none required (the
    built-in lab has them all)."""
    top = Ctx(path, "", load_yaml(path), 1)

    def section(check):  # a section left empty (its entries all commented out) adds nothing
        return lambda c: {} if c.node is None else check(c)
    return top, mapping(top, {
        "qemu": (machines_mod.qemu, None),
        "machines": (section(lambda c: named(c, machines_mod.machine)), {}),
        "kernels": (section(lambda c: kernels_mod.kernels(c, root, inherited)), {}),
        "images": (section(lambda c: named(c, images_mod.image(root))), {}),
        "tests": (section(lambda c: named(c, tests_mod.test)), {}),
        "suites": (section(suites_mod.suites), {}),
        "known_issues": (suites_mod.known_issues, None),
        "executor": (suites_mod.executor, None),
        "retries": (integer(0), None),
        "notify": (string, None),
        "reports": (reports, None),
        "defaults": (lambda c: c, None),
    })


def default_home() -> Path:
    """Where the built-in lab keeps results and state when no lab.yaml is in use."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "labrunner"


def load(path: Optional[Path] = None) -> Lab:
    """Load and validate lab.yaml at PATH on top of the built-in lab (PATH None: the built-in lab
    alone, at default_home()); raises ConfigError naming file, line and key."""
    base_top, base = _layer(builtin.LAB, builtin.BUILTIN, {})
    layers = [(base_top, base)]
    if path is not None and Path(path).resolve() != builtin.LAB:
        path = Path(path).resolve()
        layers.append(_layer(path, path.parent, base["kernels"]))
        root = path.parent
    else:
        path, root = builtin.LAB, default_home()
    where: Dict[Tuple[str, str], Ctx] = {}  # (section, entry) -> the context that defined it
    f: Dict[str, Any] = {}
    for top, layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and key in ("machines", "kernels", "images", "tests", "suites"):
                f[key] = {**f.get(key, {}), **value}
                where.update({(key, name): top.child(key).child(name) for name in value})
            elif key == "defaults" and value is not None:
                f.setdefault("defaults_ctx", []).append(value)
            elif value is not None or key not in f:
                f[key] = value
                where[(key, "")] = top
    qemu = f["qemu"] or DEFAULT_QEMU
    sections = {k: f[k] for k in ("machines", "kernels", "images", "tests")}
    d: Dict[str, Any] = {}
    for ctx in f["defaults_ctx"]:  # the user's defaults override the built-in ones key by key
        d.update({k: v for k, v in mapping(ctx, {**{k.rstrip("s"): (string, None) for k in sections},
                                                 "suite": (string, None)}).items() if v is not None})
    dctx = f["defaults_ctx"][-1]
    if d.get("suite") is not None and d["suite"] not in f["suites"]:
        raise dctx.error(f"no suite named '{d['suite']}' in 'suites'", "suite")
    _check_names(where, f["suites"], f["known_issues"] or (), sections)
    for section, table in sections.items():
        key = section.rstrip("s")
        if d[key] not in table:
            raise dctx.error(f"no {key} named '{d[key]}' in '{section}'", key)
    for test in sections["tests"].values():
        ctx = where[("tests", test.name)]
        for ref, section in (("kernel", "kernels"), ("machine", "machines"), ("image", "images")):
            value = getattr(test, ref)
            if value is not None and value not in sections[section]:
                raise ctx.error(f"no {ref} named '{value}' in '{section}'", ref)
        if test.hotplug is not None:
            machine = sections["machines"][test.machine or d["machine"]]
            spare = machine.max_cpus - machine.cpus
            if test.hotplug.slots > spare:
                mctx = where[("machines", machine.name)]
                if mctx.path != ctx.path:  # the user's machine leaves a built-in test too few: the user's line
                    raise mctx.error(f"max_cpus {machine.max_cpus} - cpus {machine.cpus} leaves {spare} "
                                     f"hot-pluggable vCPUs, but test '{test.name}' ({ctx.path}) plugs "
                                     f"{test.hotplug.slots}", "max_cpus")
                raise ctx.child("hotplug").error(
                    f"{test.hotplug.slots} slots, but machine '{machine.name}' has {spare} hot-pluggable vCPUs "
                    f"(max_cpus {machine.max_cpus} - cpus {machine.cpus})", "slots")
    return Lab(path=path, root=root, qemu=qemu, defaults=Defaults(**d), suites=f["suites"],
               known_issues=f["known_issues"] or (), slots=(f["executor"] or {}).get("slots"),
               scheduler=(f["executor"] or {}).get("scheduler"),
               retries=1 if f["retries"] is None else f["retries"], notify=f["notify"],
               reports=f["reports"] or Reports(), **sections)


def _check_names(where, suites: Dict[str, Suite], known: Tuple[KnownIssue, ...], sections) -> None:
    """Kernels and tests named by suites and known issues exist, or the error names the entry's line."""
    for name, suite in suites.items():
        seen = set()
        for i, entry in enumerate(suite.entries):
            ctx = where[("suites", name)].item(i)
            _known(ctx, entry.kernels, entry.tests, sections)
            twice = sorted(seen & {(k, t) for k in entry.kernels for t in entry.tests})
            if twice:
                raise ctx.error(f"{twice[0][0]} x {twice[0][1]} is already in an entry above (give it repeats: "
                                f"there)", "kernels")
            seen |= {(k, t) for k in entry.kernels for t in entry.tests}
    for i, issue in enumerate(known):
        _known(where[("known_issues", "")].child("known_issues").item(i), issue.kernels, issue.tests, sections)


def _known(ctx: Ctx, kernels, tests, sections) -> None:
    for key, names in (("kernels", kernels), ("tests", tests)):
        for n in names:
            if n not in sections[key]:
                raise ctx.error(f"no {key[:-1]} named '{n}' in '{key}'", key)


def find_lab(start: Optional[Path] = None) -> Optional[Path]:
    """The lab.yaml to use: $LABRUNNER_LAB, else the one in START or the nearest parent folder (as git
    finds its repository), else None: the built-in lab alone."""
    env = os.environ.get("LABRUNNER_LAB")
    if env:
        if not Path(env).is_file():
            raise ConfigError(Path(env), 0, "", "LABRUNNER_LAB names no such file")
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "lab.yaml").is_file():
            return folder / "lab.yaml"
    return None
