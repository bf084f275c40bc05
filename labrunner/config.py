"""lab.yaml: loading and validation.

Everything is validated on load against a small declarative schema, so a typo fails at once with
"FILE:LINE: key.path: message" rather than as a KeyError deep inside a run. Paths in the file are
relative to the file's folder, which is also the lab's root (images/, tests/, kernels/, results/).
"""

import dataclasses
import difflib
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from .errors import ConfigError

ACCELS = ("auto", "kvm", "tcg")


class _Map(dict):
    """A YAML mapping that remembers the line of each key."""

    line = 0

    def __init__(self):
        super().__init__()
        self.lines: Dict[str, int] = {}


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    m = _Map()
    m.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise ConfigError(loader.name, line, "", f"key {key!r} is not a string")
        if key in m:
            raise ConfigError(loader.name, line, key, f"duplicate key (first at line {m.lines[key]})")
        m[key] = loader.construct_object(value_node, deep=True)
        m.lines[key] = line
    return m


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(path, 0, "", f"cannot read: {e.strerror}") from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigError(path, mark.line + 1 if mark else 0, "", f"invalid YAML: {e.problem or e.context}") from None
    finally:
        loader.dispose()


# --- the configuration, as the rest of the lab sees it -----------------------------------------


@dataclasses.dataclass(frozen=True)
class QemuConfig:
    binary: str
    accel: str
    extra_args: Tuple[str, ...]


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


@dataclasses.dataclass(frozen=True)
class SourceRecipe:
    """How to build a kernel (see labrunner.kbuild): a Debian linux-source package or a git tree and ref,
    patches, and a base config with fragments; OPTIONAL options may be dropped by Kconfig."""
    debian_package: Optional[str]
    tree: Optional[Path]
    ref: Optional[str]
    patches: Tuple[Path, ...]
    base_config: str
    fragments: Tuple[Path, ...]
    optional: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One of: a bzImage path, a Debian kernel package, or a source recipe (built by the kernel issue)."""

    name: str
    kind: str  # "path" | "debian" | "source"
    path: Optional[Path] = None
    modules: Optional[Path] = None
    package: Optional[str] = None
    suite: Optional[str] = None
    source: Optional[SourceRecipe] = None


@dataclasses.dataclass(frozen=True)
class Image:
    name: str
    recipe: Path


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


# --- validation --------------------------------------------------------------------------------


class _Ctx:
    """Where we are in the file, for error messages."""

    def __init__(self, path: Path, keypath: str, node: Any, line: int):
        self.path, self.keypath, self.node, self.line = path, keypath, node, line

    def error(self, message: str, key: Optional[str] = None):
        line = self.line
        if key is not None and isinstance(self.node, _Map):
            line = self.node.lines.get(key, line)
        keypath = f"{self.keypath}.{key}" if key and self.keypath else (key or self.keypath)
        return ConfigError(self.path, line, keypath, message)

    def child(self, key: str) -> "_Ctx":
        node = self.node[key]
        line = getattr(node, "line", 0) or self.node.lines.get(key, self.line)
        return _Ctx(self.path, f"{self.keypath}.{key}" if self.keypath else key, node, line)


def _mapping(ctx: _Ctx, fields: Dict[str, Tuple[Any, Any]]) -> Dict[str, Any]:
    """Check a mapping against FIELDS {key: (checker, default)}; a default of _REQUIRED must be given."""
    if ctx.node is None:
        ctx.node = _Map()
    if not isinstance(ctx.node, dict):
        raise ctx.error(f"expected a mapping, got {_kind(ctx.node)}")
    for key in ctx.node:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            raise ctx.error(f"unknown key{hint}", key)
    out = {}
    for key, (check, default) in fields.items():
        if key in ctx.node:
            out[key] = check(ctx.child(key))
        elif default is _REQUIRED:
            raise ctx.error(f"missing required key '{key}'")
        else:
            out[key] = default
    return out


_REQUIRED = object()


def _kind(value: Any) -> str:
    return {dict: "a mapping", _Map: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _str(ctx: _Ctx) -> str:
    if not isinstance(ctx.node, str):
        raise ctx.error(f"expected a string, got {_kind(ctx.node)}")
    return ctx.node


def _int(minimum: int = 0):
    def check(ctx: _Ctx) -> int:
        if isinstance(ctx.node, bool) or not isinstance(ctx.node, int):
            raise ctx.error(f"expected an integer, got {_kind(ctx.node)}")
        if ctx.node < minimum:
            raise ctx.error(f"must be at least {minimum}, got {ctx.node}")
        return ctx.node
    return check


def _bool(ctx: _Ctx) -> bool:
    if not isinstance(ctx.node, bool):
        raise ctx.error(f"expected true or false, got {_kind(ctx.node)}")
    return ctx.node


def _regex_list(ctx: _Ctx) -> Tuple[str, ...]:
    """Titles or regular expressions (matched with re.search against a report's title)."""
    patterns = _str_list(ctx)
    for i, p in enumerate(patterns):
        try:
            re.compile(p)
        except re.error as e:
            raise ctx.error(f"item {i + 1} is not a valid regular expression: {e}")
    return patterns


def _choice(*choices: str):
    def check(ctx: _Ctx) -> str:
        value = _str(ctx)
        if value not in choices:
            raise ctx.error(f"must be one of {', '.join(choices)}, got '{value}'")
        return value
    return check


def _str_list(ctx: _Ctx) -> Tuple[str, ...]:
    if not isinstance(ctx.node, list) or not all(isinstance(x, str) for x in ctx.node):
        raise ctx.error(f"expected a list of strings, got {_kind(ctx.node)}")
    return tuple(ctx.node)


_SIZE = re.compile(r"^(\d+)\s*([MG])(?:i?B)?$", re.I)


def _memory(ctx: _Ctx) -> int:
    """A size in MiB: an integer, or a string such as '1G' or '512M'."""
    if isinstance(ctx.node, int) and not isinstance(ctx.node, bool):
        mib = ctx.node
    else:
        m = _SIZE.match(ctx.node) if isinstance(ctx.node, str) else None
        if not m:
            raise ctx.error(f"expected a size such as 1024, '512M' or '2G', got {ctx.node!r}")
        mib = int(m.group(1)) * (1024 if m.group(2).upper() == "G" else 1)
    if mib < 64:
        raise ctx.error(f"{mib} MiB is too small to boot a guest")
    return mib


def _cpu_model(ctx: _Ctx) -> Dict[str, str]:
    return _mapping(ctx, {"kvm": (_str, "host"), "tcg": (_str, "max")})


def _named(ctx: _Ctx, entry):
    """A section of named entries, each checked by ENTRY(ctx, name)."""
    if not isinstance(ctx.node, dict) or not ctx.node:
        raise ctx.error("expected a mapping of named entries")
    return {name: entry(ctx.child(name), name) for name in ctx.node}


def _machine(ctx: _Ctx, name: str) -> Machine:
    f = _mapping(ctx, {
        "machine_type": (_str, "q35"),
        "cpus": (_int(1), 2),
        "max_cpus": (_int(1), None),
        "memory": (_memory, 1024),
        "cpu_model": (_cpu_model, {"kvm": "host", "tcg": "max"}),
        "lpj": (_int(1), 5000000),
        "tcg_plug_budget": (_int(0), 64),
        "cmdline": (_str, ""),
    })
    f["max_cpus"] = f["max_cpus"] or f["cpus"]
    if f["max_cpus"] < f["cpus"]:
        raise ctx.error(f"max_cpus ({f['max_cpus']}) is less than cpus ({f['cpus']})", "max_cpus")
    f["memory_mib"] = f.pop("memory")
    return Machine(name=name, **f)


def _path_in(root: Path):
    def check(ctx: _Ctx) -> Path:
        return (root / os.path.expanduser(_str(ctx))).resolve()
    return check


def _kernel(root: Path):
    def check(ctx: _Ctx, name: str) -> Kernel:
        f = _mapping(ctx, {
            "path": (_path_in(root), None),
            "modules": (_path_in(root), None),
            "debian_package": (_str, None),
            "suite": (_str, None),
            "source": (lambda c: c, None),
        })
        kinds = [k for k in ("path", "debian_package", "source") if f[k] is not None]
        if len(kinds) != 1:
            raise ctx.error("give exactly one of 'path', 'debian_package' or 'source'"
                            + (f" (got {', '.join(kinds)})" if kinds else ""))
        if f["path"] is not None and not f["path"].is_file():
            raise ctx.error(f"kernel image {f['path']} does not exist", "path")
        if f["modules"] is not None and not f["modules"].is_dir():
            raise ctx.error(f"modules folder {f['modules']} does not exist", "modules")
        if f["suite"] is not None and f["debian_package"] is None:
            raise ctx.error("'suite' goes with 'debian_package'", "suite")
        kind = {"path": "path", "debian_package": "debian", "source": "source"}[kinds[0]]
        return Kernel(name=name, kind=kind, path=f["path"], modules=f["modules"],
                      package=f["debian_package"], suite=f["suite"], source=f["source"])
    return check


def _file_list(root: Path):
    def check(ctx: _Ctx) -> Tuple[Path, ...]:
        if not isinstance(ctx.node, list):
            raise ctx.error(f"expected a list of files, got {_kind(ctx.node)}")
        out = []
        for i, item in enumerate(ctx.node):
            if not isinstance(item, str):
                raise ctx.error(f"item {i + 1}: expected a file name")
            path = (root / os.path.expanduser(item)).resolve()
            if not path.is_file():
                raise ctx.error(f"item {i + 1}: {path} does not exist")
            out.append(path)
        return tuple(out)
    return check


def _source(root: Path, ctx: _Ctx, kernels: Dict[str, Any]) -> SourceRecipe:
    """A source recipe; 'base: NAME' starts from another source kernel's recipe and adds patches."""
    f = _mapping(ctx, {
        "base": (_str, None),
        "debian_package": (_str, None),
        "tree": (_path_in(root), None),
        "ref": (_str, None),
        "patches": (_file_list(root), ()),
        "config": (lambda c: c, None),
    })
    if f["base"] is not None:
        parent = kernels.get(f["base"])
        if parent is None or parent.source is None:
            raise ctx.error(f"'{f['base']}' is not a source kernel defined above", "base")
        if any(f[k] is not None for k in ("debian_package", "tree", "ref", "config")):
            raise ctx.error("with 'base', give only 'patches' (the rest comes from the base)", "base")
        return dataclasses.replace(parent.source, patches=parent.source.patches + f["patches"])
    if (f["debian_package"] is None) == (f["tree"] is None):
        raise ctx.error("give exactly one of 'debian_package' (e.g. linux-source-6.12) or 'tree' (with 'ref')")
    if f["tree"] is not None and f["ref"] is None:
        raise ctx.error("'tree' needs a 'ref' (a branch, tag or commit)", "tree")
    if f["config"] is None:
        raise ctx.error("missing required key 'config'")
    c = _mapping(f["config"], {
        "base": (_str, "x86_64_defconfig"),
        "fragments": (_file_list(root), ()),
        "optional": (_str_list, ()),
    })
    return SourceRecipe(debian_package=f["debian_package"], tree=f["tree"], ref=f["ref"], patches=f["patches"],
                        base_config=c["base"], fragments=c["fragments"], optional=c["optional"])


def _kernels(ctx: _Ctx, root: Path) -> Dict[str, Kernel]:
    """Kernels in file order, so a source recipe's 'base' can name one defined above it."""
    if not isinstance(ctx.node, dict) or not ctx.node:
        raise ctx.error("expected a mapping of named entries")
    kernels: Dict[str, Kernel] = {}
    check = _kernel(root)
    for name in ctx.node:
        kernel = check(ctx.child(name), name)
        if kernel.kind == "source":
            entry = ctx.child(name)
            kernel = dataclasses.replace(kernel, source=_source(root, entry.child("source"), kernels))
        kernels[name] = kernel
    return kernels


def _image(root: Path):
    def check(ctx: _Ctx, name: str) -> Image:
        f = _mapping(ctx, {"recipe": (_path_in(root), _REQUIRED)})
        if not (f["recipe"] / "recipe.yaml").is_file():
            raise ctx.error(f"{f['recipe']} has no recipe.yaml", "recipe")
        return Image(name=name, recipe=f["recipe"])
    return check


def _timeouts(ctx: _Ctx) -> Timeouts:
    return Timeouts(**_mapping(ctx, {
        "boot": (_int(1), 300),
        "ssh": (_int(1), 60),
        "workload_grace": (_int(0), 120),
        "hang": (_int(5), 120),
    }))


def _number(minimum: float):
    def check(ctx: _Ctx) -> float:
        if isinstance(ctx.node, bool) or not isinstance(ctx.node, (int, float)):
            raise ctx.error(f"expected a number, got {_kind(ctx.node)}")
        if ctx.node < minimum:
            raise ctx.error(f"must be at least {minimum}, got {ctx.node}")
        return float(ctx.node)
    return check


def _hotplug(ctx: _Ctx) -> HotplugSpec:
    f = _mapping(ctx, {
        "period": (_number(0.5), 4.0),
        "slots": (_int(1), 2),
        "seed": (_int(0), None),
        "confirm_timeout": (_int(1), 30),
    })
    return HotplugSpec(period_s=f["period"], slots=f["slots"], seed=f["seed"], confirm_timeout=f["confirm_timeout"])


def _env(ctx: _Ctx) -> Dict[str, str]:
    if not isinstance(ctx.node, dict):
        raise ctx.error(f"expected a mapping of NAME: value, got {_kind(ctx.node)}")
    out = {}
    for key, value in ctx.node.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ctx.error("not a valid environment variable name", key)
        if isinstance(value, (dict, list)) or value is None:
            raise ctx.error("expected a string or a number", key)
        out[key] = str(value)
    return out


def _test(ctx: _Ctx, name: str) -> Test:
    f = _mapping(ctx, {
        "kernel": (_str, None),
        "machine": (_str, None),
        "image": (_str, None),
        "command": (_str, _REQUIRED),
        "duration": (_int(1), 60),
        "cmdline": (_str, ""),
        "env": (_env, {}),
        "hotplug": (_hotplug, None),
        "stop_on_first_splat": (_bool, False),
        "ignore_splats": (_regex_list, ()),
        "timeouts": (_timeouts, None),
    })
    f["timeouts"] = f["timeouts"] or _timeouts(_Ctx(ctx.path, "", _Map(), 0))
    return Test(name=name, **f)


def load(path) -> Lab:
    """Load and validate lab.yaml at PATH; raises ConfigError naming file, line and key."""
    path = Path(path).resolve()
    root = path.parent
    data = load_yaml(path)
    top = _Ctx(path, "", data, 1)
    f = _mapping(top, {
        "qemu": (lambda c: QemuConfig(**_mapping(c, {
            "binary": (_str, "qemu-system-x86_64"),
            "accel": (_choice(*ACCELS), "auto"),
            "extra_args": (_str_list, ()),
        })), None),
        "machines": (lambda c: _named(c, _machine), _REQUIRED),
        "kernels": (lambda c: _kernels(c, root), _REQUIRED),
        "images": (lambda c: _named(c, _image(root)), _REQUIRED),
        "tests": (lambda c: _named(c, _test), _REQUIRED),
        "defaults": (lambda c: c, _REQUIRED),
    })
    qemu = f["qemu"] or QemuConfig("qemu-system-x86_64", "auto", ())
    sections = {k: f[k] for k in ("machines", "kernels", "images", "tests")}
    d = _mapping(f["defaults"], {k.rstrip("s"): (_str, _REQUIRED) for k in sections})
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
    return Lab(path=path, root=root, qemu=qemu, defaults=Defaults(**d), **sections)


def find_lab(start: Optional[Path] = None) -> Path:
    """lab.yaml in START or the nearest parent folder, like git finds its repository."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "lab.yaml").is_file():
            return folder / "lab.yaml"
    raise ConfigError(here, 0, "", "no lab.yaml here or in any parent folder (use --lab PATH)")


def load_recipe(path: Path) -> Dict[str, List[str]]:
    """An image recipe.yaml: host binaries to copy (with their libraries) and kernel modules to load."""
    data = load_yaml(path)
    f = _mapping(_Ctx(path, "", data, 1), {
        "binaries": (_str_list, _REQUIRED),
        "modules": (_str_list, ()),
    })
    return {"binaries": list(f["binaries"]), "modules": list(f["modules"])}
