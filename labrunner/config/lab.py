"""lab.yaml as a whole: its sections, `defaults:`, the references between them, and where the lab
keeps its results, cache and state."""

import dataclasses
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import ConfigError
from . import images as images_mod
from . import kernels as kernels_mod
from . import machines as machines_mod
from . import suites as suites_mod
from . import tests as tests_mod
from .images import Image
from .kernels import Kernel
from .machines import DEFAULT_QEMU, Machine, QemuConfig
from .schema import REQUIRED, Ctx, integer, load_yaml, mapping, named, string
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
    retries: int = 1  # more runs of a cell that ended in an infrastructure error or a hang without report
    notify: Optional[str] = None  # a command given a nightly's comparison, when something is new
    reports: Reports = Reports()

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests"

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
        """Per-lab state that is not configuration: the SSH key pair."""
        return self.root / ".labrunner"

    def pick(self, section: str, name: Optional[str]):
        """The entry NAME of SECTION, or the default one; a clear error for unknown names."""
        table = getattr(self, section)
        name = name or getattr(self.defaults, section.rstrip("s"))
        if name not in table:
            raise ConfigError(self.path, 0, f"{section}.{name}",
                              f"no such entry; known: {', '.join(sorted(table)) or 'none'}")
        return table[name]


def load(path) -> Lab:
    """Load and validate lab.yaml at PATH; raises ConfigError naming file, line and key."""
    path = Path(path).resolve()
    root = path.parent
    data = load_yaml(path)
    top = Ctx(path, "", data, 1)
    # One row per section: the module that owns its schema checks it.
    f = mapping(top, {
        "qemu": (machines_mod.qemu, None),
        "machines": (lambda c: named(c, machines_mod.machine), REQUIRED),
        "kernels": (lambda c: kernels_mod.kernels(c, root), REQUIRED),
        "images": (lambda c: named(c, images_mod.image(root)), REQUIRED),
        "tests": (lambda c: named(c, tests_mod.test), REQUIRED),
        "suites": (suites_mod.suites, {}),
        "known_issues": (suites_mod.known_issues, ()),
        "executor": (suites_mod.executor, None),
        "retries": (integer(0), 1),
        "notify": (string, None),
        "reports": (reports, Reports()),
        "defaults": (lambda c: c, REQUIRED),
    })
    qemu = f["qemu"] or DEFAULT_QEMU
    sections = {k: f[k] for k in ("machines", "kernels", "images", "tests")}
    d = mapping(f["defaults"], {**{k.rstrip("s"): (string, REQUIRED) for k in sections}, "suite": (string, None)})
    if d["suite"] is not None and d["suite"] not in f["suites"]:
        raise f["defaults"].error(f"no suite named '{d['suite']}' in 'suites'", "suite")
    _check_names(top, f["suites"], f["known_issues"], sections)
    for section, table in sections.items():
        key = section.rstrip("s")
        if d[key] not in table:
            raise f["defaults"].error(f"no {key} named '{d[key]}' in '{section}'", key)
    tests_ctx = top.child("tests")
    for test in sections["tests"].values():
        for ref, section in (("kernel", "kernels"), ("machine", "machines"), ("image", "images")):
            value = getattr(test, ref)
            if value is not None and value not in sections[section]:
                raise tests_ctx.child(test.name).error(f"no {ref} named '{value}' in '{section}'", ref)
        if test.hotplug is not None:
            machine = sections["machines"][test.machine or d["machine"]]
            spare = machine.max_cpus - machine.cpus
            if test.hotplug.slots > spare:
                raise tests_ctx.child(test.name).child("hotplug").error(
                    f"{test.hotplug.slots} slots, but machine '{machine.name}' has {spare} hot-pluggable vCPUs "
                    f"(max_cpus {machine.max_cpus} - cpus {machine.cpus})", "slots")
    return Lab(path=path, root=root, qemu=qemu, defaults=Defaults(**d), suites=f["suites"],
               known_issues=f["known_issues"], slots=f["executor"], retries=f["retries"], notify=f["notify"],
               reports=f["reports"], **sections)


def _check_names(top: Ctx, suites: Dict[str, Suite], known: Tuple[KnownIssue, ...], sections) -> None:
    """Kernels and tests named by suites and known issues exist, or the error names the entry's line."""
    for name, suite in suites.items():
        seen = set()
        for i, entry in enumerate(suite.entries):
            ctx = top.child("suites").child(name).item(i)
            _known(ctx, entry.kernels, entry.tests, sections)
            twice = sorted(seen & {(k, t) for k in entry.kernels for t in entry.tests})
            if twice:
                raise ctx.error(f"{twice[0][0]} x {twice[0][1]} is already in an entry above (give it repeats: "
                                f"there)", "kernels")
            seen |= {(k, t) for k in entry.kernels for t in entry.tests}
    for i, issue in enumerate(known):
        _known(top.child("known_issues").item(i), issue.kernels, issue.tests, sections)


def _known(ctx: Ctx, kernels, tests, sections) -> None:
    for key, names in (("kernels", kernels), ("tests", tests)):
        for n in names:
            if n not in sections[key]:
                raise ctx.error(f"no {key[:-1]} named '{n}' in '{key}'", key)


def find_lab(start: Optional[Path] = None) -> Path:
    """lab.yaml in START or the nearest parent folder, like git finds its repository."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "lab.yaml").is_file():
            return folder / "lab.yaml"
    raise ConfigError(here, 0, "", "no lab.yaml here or in any parent folder (use --lab PATH)")
