"""lab.yaml's `kernels:` section: a bzImage path, a Debian kernel package, or a source recipe to build
(labrunner.build). A recipe may start from another one defined above it with `base:`."""

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from . import builtin
from .schema import Ctx, file_list, mapping, path_in, str_list, string


@dataclasses.dataclass(frozen=True)
class SourceRecipe:
    """How to build a kernel (see labrunner.build.kbuild): a Debian linux-source package or a git tree and
    ref, patches, and a base config with fragments; OPTIONAL options may be dropped by Kconfig."""
    debian_package: Optional[str]
    tree: Optional[Path]
    ref: Optional[str]
    patches: Tuple[Path, ...]
    base_config: str
    fragments: Tuple[Path, ...]
    optional: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One of: a bzImage path, a Debian kernel package, or a source recipe."""

    name: str
    kind: str  # "path" | "debian" | "source"
    path: Optional[Path] = None
    modules: Optional[Path] = None
    package: Optional[str] = None
    suite: Optional[str] = None
    source: Optional[SourceRecipe] = None
    # For a kernel without a tree here: the source kernel whose tree its KVM selftests are built from.
    selftests_source: Optional["Kernel"] = None


def _kernel(root: Path):
    def check(ctx: Ctx, name: str) -> Kernel:
        f = mapping(ctx, {
            "path": (path_in(root), None),
            "modules": (path_in(root), None),
            "debian_package": (string, None),
            "suite": (string, None),
            "source": (lambda c: c, None),
            "selftests_source": (string, None),
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


def _source(root: Path, ctx: Ctx, kernels: Dict[str, Any]) -> SourceRecipe:
    """A source recipe; 'base: NAME' starts from another source kernel's recipe and adds patches."""
    f = mapping(ctx, {
        "base": (string, None),
        "debian_package": (string, None),
        "tree": (path_in(root), None),
        "ref": (string, None),
        "patches": (file_list(root, builtin.PATCHES, ".patch"), ()),
        "config": (lambda c: c, None),
    })
    if f["base"] is not None:
        parent = kernels.get(f["base"])
        if parent is None or parent.source is None:
            raise ctx.error(f"'{f['base']}' is not a source kernel defined above (or built in)", "base")
        if any(f[k] is not None for k in ("debian_package", "tree", "ref", "config")):
            raise ctx.error("with 'base', give only 'patches' (the rest comes from the base)", "base")
        return dataclasses.replace(parent.source, patches=parent.source.patches + f["patches"])
    if (f["debian_package"] is None) == (f["tree"] is None):
        raise ctx.error("give exactly one of 'debian_package' (e.g. linux-source-6.12) or 'tree' (with 'ref')")
    if f["tree"] is not None and f["ref"] is None:
        raise ctx.error("'tree' needs a 'ref' (a branch, tag or commit)", "tree")
    if f["config"] is None:
        raise ctx.error("missing required key 'config'")
    c = mapping(f["config"], {
        "base": (string, "x86_64_defconfig"),
        "fragments": (file_list(root, builtin.FRAGMENTS, ".config"), ()),
        "optional": (str_list, ()),
    })
    return SourceRecipe(debian_package=f["debian_package"], tree=f["tree"], ref=f["ref"], patches=f["patches"],
                        base_config=c["base"], fragments=c["fragments"], optional=c["optional"])


def kernels(ctx: Ctx, root: Path, inherited: Dict[str, Kernel] = {}) -> Dict[str, Kernel]:
    """Kernels in file order, so a source recipe's 'base' can name one defined above it, or one
    INHERITED (the built-in lab's); only this file's kernels are returned."""
    if not isinstance(ctx.node, dict) or not ctx.node:
        raise ctx.error("expected a mapping of named entries")
    known: Dict[str, Kernel] = dict(inherited)
    out: Dict[str, Kernel] = {}
    check = _kernel(root)
    for name in ctx.node:
        entry = ctx.child(name)
        kernel = check(entry, name)
        if kernel.kind == "source":
            kernel = dataclasses.replace(kernel, source=_source(root, entry.child("source"), known))
        out[name] = known[name] = kernel
    for name in out:  # (any kernel of the lab, above or below)
        entry = ctx.child(name)
        if isinstance(entry.node, dict) and "selftests_source" in entry.node:
            other = known.get(entry.node["selftests_source"])
            if out[name].kind == "source":
                raise entry.error("a source kernel's selftests come from its own tree", "selftests_source")
            if other is None or other.kind != "source":
                raise entry.error(f"'{entry.node['selftests_source']}' is not a source kernel of this lab",
                                  "selftests_source")
            out[name] = known[name] = dataclasses.replace(out[name], selftests_source=other)
    return out
