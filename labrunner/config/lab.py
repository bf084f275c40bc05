"""lab.yaml as a whole: its sections, `defaults:`, the references between them, and where the lab
keeps its results, cache and state."""

import dataclasses
import os
from pathlib import Path
from typing import Dict, Optional

from ..errors import ConfigError
from . import images as images_mod
from . import kernels as kernels_mod
from . import machines as machines_mod
from . import tests as tests_mod
from .images import Image
from .kernels import Kernel
from .machines import DEFAULT_QEMU, Machine, QemuConfig
from .schema import REQUIRED, Ctx, load_yaml, mapping, named, string
from .tests import Test


@dataclasses.dataclass(frozen=True)
class Defaults:
    kernel: str
    machine: str
    image: str
    test: str


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
        "defaults": (lambda c: c, REQUIRED),
    })
    qemu = f["qemu"] or DEFAULT_QEMU
    sections = {k: f[k] for k in ("machines", "kernels", "images", "tests")}
    d = mapping(f["defaults"], {k.rstrip("s"): (string, REQUIRED) for k in sections})
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
    return Lab(path=path, root=root, qemu=qemu, defaults=Defaults(**d), **sections)


def find_lab(start: Optional[Path] = None) -> Path:
    """lab.yaml in START or the nearest parent folder, like git finds its repository."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "lab.yaml").is_file():
            return folder / "lab.yaml"
    raise ConfigError(here, 0, "", "no lab.yaml here or in any parent folder (use --lab PATH)")
