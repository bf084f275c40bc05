"""Kernels built from source recipes: tree + patches + config fragments, out of tree, cached by content.

- Source: Debian's linux-source-X package, unpacked once into the cache and made a git repository
  (so patches apply the same way everywhere), or a git tree and ref (cloned --shared, never touched).
- Patches: files, a `series` file or an mbox of a posted series, applied with `git am`. A patch that
  does not apply is a user error naming the patch and the failing hunk.
- Config: a base (`x86_64_defconfig` or a .config) plus fragments merged by scripts/kconfig/
  merge_config.sh; every option the fragments ask for must be in the final .config, or the build
  fails naming the dropped options (unless the recipe lists them as optional).
- Build: `make O=` in one warm directory per (source, config), so the next patch set rebuilds only
  what it touches; ccache when installed. Artifacts (bzImage, .config, System.map, vmlinux) are
  cached under a key of source tree hash, patch contents, config inputs and compiler version.
"""

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import cache as cache_mod
from .. import process
from ..config import Kernel, SourceRecipe
from ..errors import BuildError, InfraError, LabError, UserError
from . import debian

log = logging.getLogger(__name__)

GIT_ID = ["-c", "user.name=labrunner", "-c", "user.email=labrunner@localhost"]
BUILD_TIMEOUT = 3 * 3600
ARTIFACTS = ("arch/x86/boot/bzImage", ".config", "System.map", "vmlinux")
BUILD_ENV = {"KBUILD_BUILD_USER": "labrunner", "KBUILD_BUILD_HOST": "labrunner"}
KEEP_WARM = 3  # warm build directories kept in the cache (3-5 GB each); the least recently built go


@dataclasses.dataclass(frozen=True)
class Built:
    key: str
    dir: Path
    # What was built, known after a build (not from the cache's folder name alone, so not compared):
    commit: Optional[str] = dataclasses.field(default=None, compare=False)  # the base the patches went on
    patchset_hash: str = dataclasses.field(default="", compare=False)  # KCIDB's, "" without patches

    @property
    def bzimage(self) -> Path:
        return self.dir / "bzImage"


def git(repo: Path, *args: str, timeout: float = 600, what: str = "git", env: Optional[Dict[str, str]] = None,
        input: Optional[str] = None) -> str:
    """git -C REPO ARGS as labrunner's own identity (ENV added to the environment, INPUT on stdin); its stdout."""
    return process.run(["git", "-C", str(repo), *GIT_ID, *args], timeout=timeout, what=what, env=env, input=input)


# --- source trees --------------------------------------------------------------------------------


def debian_source(package: str, cache: Path, progress: Callable[[str], None]) -> Path:
    """A git repository of Debian's linux-source package in the cache, made once per version."""
    name, version, repo = _debian_repo(package, cache)

    def make(dest: Path) -> None:
        with tempfile.TemporaryDirectory(dir=repo.parent) as tmp:
            pkg = debian.download_unpacked(name, version, Path(tmp), progress, timeout=1800)
            (tarball,) = Path(pkg, "usr", "src").glob("linux-source-*.tar.*")
            process.run(["tar", "-xf", str(tarball), "-C", tmp], timeout=1200, what="unpacking the kernel source")
            (tree,) = [p for p in Path(tmp).glob("linux-source-*") if p.is_dir()]
            progress("making it a git repository")
            git(tree, "init", "-q", what="git init")
            # Debian's top-level .gitignore ignores everything ("/*"): force, the tree is pristine.
            git(tree, "add", "-f", "-A", timeout=1800, what="git add")
            git(tree, "commit", "-q", "-m", f"{name} {version}", timeout=1800, what="git commit")
            tree.rename(dest)
    return cache_mod.get_or_build(cache, repo, make)


def _debian_repo(package: str, cache: Path) -> Tuple[str, str, Path]:
    """PACKAGE's source package name and version, and where its repository is (or will be) cached."""
    name, version = debian.resolve_cached(package, None, cache)
    return name, version, cache / "src" / f"{name}_{version}"


def _git_repo(tree: Path, cache: Path) -> Path:
    return cache / "src" / ("git-" + hashlib.sha256(str(tree).encode()).hexdigest()[:12])


def git_source(tree: Path, cache: Path) -> Path:
    """A shared clone of the user's git TREE, so labrunner never changes it."""
    repo = _git_repo(tree, cache)
    if repo.exists():
        with cache_mod.locked(repo, what=f"the clone of {tree}"):
            git(repo, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*",
                 timeout=1800, what=f"fetching {tree}")
        return repo
    return cache_mod.get_or_build(cache, repo, lambda dest: process.run(
        ["git", "clone", "-q", "--shared", "--no-checkout", str(tree), str(dest)], timeout=1800, what=f"cloning {tree}"))


def source_commit(recipe: SourceRecipe, cache: Path, progress: Callable[[str], None]) -> Tuple[Path, str]:
    """(repository, commit) the recipe builds on."""
    if recipe.debian_package:
        repo = debian_source(recipe.debian_package, cache, progress)
        ref = recipe.ref or "HEAD"  # a ref: another commit of the imported source (a bisection's)
        try:
            return repo, git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()
        except InfraError:
            raise UserError(f"{repo}: no commit '{ref}'") from None
    repo = git_source(recipe.tree, cache)
    try:
        return repo, git(repo, "rev-parse", "--verify", f"{recipe.ref}^{{commit}}").strip()
    except InfraError:
        raise UserError(f"{recipe.tree}: no commit '{recipe.ref}'") from None


# --- patches -------------------------------------------------------------------------------------


def patch_files(paths: Sequence[Path]) -> List[Path]:
    """Patch files in order: a 'series' file lists its patches (one per line, # comments); an mbox or
    a patch file is itself."""
    out: List[Path] = []
    for path in paths:
        if path.name == "series" or path.suffix == ".series":
            for line in path.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    out.append(path.parent / line)
        else:
            out.append(path)
    for p in out:
        if not p.is_file():
            raise UserError(f"patch {p} does not exist")
    return out


_FAILED_HUNK = re.compile(r"^(error: patch failed: .*|error: .*: patch does not apply|Patch failed at .*)$", re.M)


def _am_abort(src: Path) -> None:
    """End a git am in progress, if any (it fails harmlessly when there is none)."""
    process.call(["git", "-C", str(src), "am", "--abort"], timeout=600, what="git am --abort")


def apply_patches(src: Path, base: str, patches: Sequence[Path]) -> None:
    """Reset SRC to BASE and apply PATCHES in order (git am; plain diffs with git apply); a clear error
    naming the patch and the hunk that failed."""
    _am_abort(src)  # a stale one, from a run that was interrupted
    git(src, "checkout", "-q", "-f", "--detach", base, timeout=1800, what="git checkout")
    for patch in patches:
        if patch.read_bytes().startswith(b"From "):  # a mail (git format-patch, an mbox): git am
            argv = [["git", "-C", str(src), *GIT_ID, "am", "-q", "--keep-cr", str(patch)]]
        else:  # a plain diff: apply it and commit it under its file name
            argv = [["git", "-C", str(src), "apply", "--index", str(patch)],
                    ["git", "-C", str(src), *GIT_ID, "commit", "-q", "-m", patch.name]]
        for step in argv:
            status, out, err = process.call(step, timeout=600, what=f"applying {patch.name}")
            if status != 0:
                _am_abort(src)
                details = "\n".join(_FAILED_HUNK.findall(out + err)) or (out + err).strip()[-800:]
                raise UserError(f"patch {patch} does not apply on {base[:12]}:\n{details}")


# --- config --------------------------------------------------------------------------------------

_OPTION = re.compile(r"^(CONFIG_\w+)=(.*)$|^# (CONFIG_\w+) is not set$")


def read_options(text: str) -> Dict[str, str]:
    """CONFIG_X -> value ('n' for '# CONFIG_X is not set' and for '=n')."""
    options = {}
    for line in text.splitlines():
        m = _OPTION.match(line.strip())
        if m:
            name = m.group(1) or m.group(3)
            options[name] = "n" if m.group(3) or m.group(2) == "n" else m.group(2)
    return options


def dropped_options(wanted: Dict[str, str], final: Dict[str, str], optional: Sequence[str]) -> List[str]:
    """Options the fragments asked for that the final .config does not have as asked."""
    bad = []
    for name, value in wanted.items():
        got = final.get(name, "n")
        if got != value and name not in optional:
            bad.append(f"{name}={value} (got {name}={got})" if got != "n" else f"{name}={value} (not set)")
    return bad


def configure(src: Path, out: Path, recipe: SourceRecipe, env: Dict[str, str]) -> None:
    base = recipe.base_config
    base_path = src / "arch" / "x86" / "configs" / base if re.fullmatch(r"\w+_defconfig", base) else Path(base)
    if not base_path.is_file():
        raise UserError(f"config base {base} not found ({base_path})")
    argv = ["scripts/kconfig/merge_config.sh", "-O", str(out), str(base_path), *map(str, recipe.fragments)]
    status, stdout, stderr = process.call(argv, cwd=src, env=env, timeout=600, what="merge_config.sh")
    if status != 0:
        raise BuildError(f"merge_config.sh failed:\n{(stdout + stderr)[-2000:]}")
    wanted: Dict[str, str] = {}
    for fragment in recipe.fragments:
        wanted.update(read_options(fragment.read_text()))
    bad = dropped_options(wanted, read_options((out / ".config").read_text()), recipe.optional)
    if bad:
        raise UserError("Kconfig dropped options the fragments ask for (a missing dependency?); fix the "
                        "fragment or list them under config.optional:\n  " + "\n  ".join(bad))


# --- build ---------------------------------------------------------------------------------------


def _compiler() -> str:
    return process.run(["gcc", "--version"], timeout=30, what="gcc --version").splitlines()[0]


def build_key(tree_hash: str, patches: Sequence[Path], recipe: SourceRecipe) -> str:
    h = hashlib.sha256(f"labrunner-kbuild-1\0{tree_hash}\0".encode())
    for patch in patches:
        h.update(hashlib.sha256(patch.read_bytes()).digest())
    h.update(f"\0{recipe.base_config}\0{','.join(recipe.optional)}\0".encode())
    if not re.fullmatch(r"\w+_defconfig", recipe.base_config):
        h.update(Path(recipe.base_config).read_bytes())
    for fragment in recipe.fragments:
        h.update(fragment.read_bytes())
    h.update(_compiler().encode())
    return h.hexdigest()[:16]


def patchset_hash(patches: Sequence[Path]) -> str:
    """KCIDB's patchset hash: sha256 over each patch's sha256 in hex, newline-terminated, in order."""
    if not patches:
        return ""
    return hashlib.sha256("".join(hashlib.sha256(p.read_bytes()).hexdigest() + "\n"
                                  for p in patches).encode()).hexdigest()


def cached(kernel: Kernel, cache: Path) -> Tuple[Optional[str], Optional[Built]]:
    """For `kernel list`, without downloading or building: KERNEL's build key as its recipe stands now
    (None when its source is not in the cache yet, or cannot be read), and its build of that key, or
    else its newest build of any key."""
    # NAME-KEY only: a bisection's variants are NAME-bisect-KEY, and are not builds of this recipe.
    own = re.compile(re.escape(kernel.name) + r"-([0-9a-f]+)")
    found = (cache / "kernels" / "built").glob(f"{kernel.name}-*/bzImage")
    builds = sorted((Built(m.group(1), p.parent) for p in found if (m := own.fullmatch(p.parent.name))),
                    key=lambda b: b.bzimage.stat().st_mtime)
    recipe = kernel.source
    key = None
    try:
        present = (_debian_repo(recipe.debian_package, cache)[2] if recipe.debian_package
                   else _git_repo(recipe.tree, cache)).is_dir()
        key = plan(kernel, cache).key if present else None
    except LabError as e:
        log.info("cannot compute the build key of %s: %s", kernel.name, e)
    return key, next((b for b in builds if b.key == key), builds[-1] if builds else None)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a build of a recipe is made of: the repository and commit, the patches, the build key,
    and the warm directory it is built in."""
    repo: Path
    commit: str
    patches: Tuple[Path, ...]
    key: str
    work: Path


def plan(kernel: Kernel, cache: Path, progress: Callable[[str], None] = lambda s: None,
         extra_patches: Sequence[Path] = ()) -> Plan:
    recipe = kernel.source
    repo, commit = source_commit(recipe, cache, progress)
    tree_hash = git(repo, "rev-parse", f"{commit}^{{tree}}").strip()
    patches = patch_files([*recipe.patches, *extra_patches])
    # One warm build directory per (source repository, config): variants differing by patches, and
    # the commits of a bisection, share it and rebuild only what they change.
    config_key = hashlib.sha256((recipe.base_config + "".join(
        f.read_text() for f in recipe.fragments)).encode()).hexdigest()[:12]
    return Plan(repo, commit, tuple(patches), build_key(tree_hash, patches, recipe), cache / "build" / f"{repo.name}-{config_key}")


def build(kernel: Kernel, cache: Path, progress: Callable[[str], None] = lambda s: None,
          extra_patches: Sequence[Path] = ()) -> Built:
    """Build KERNEL's recipe (plus EXTRA_PATCHES); at once from the cache when its key was built before.
    Safe to run concurrently: each key is built once (cache.get_or_build), and builds that share a
    warm directory take turns in it."""
    p = plan(kernel, cache, progress, extra_patches)
    dest = cache / "kernels" / "built" / f"{kernel.name}-{p.key}"

    def make_artifacts(staging: Path) -> None:
        with source_tree(kernel, p, progress) as (src, out):
            _build_in(src, out, staging, progress)

    if not dest.exists():
        cache_mod.get_or_build(cache, dest, make_artifacts)
        prune_warm(p.work.parent, KEEP_WARM)
    return Built(p.key, dest, p.commit, patchset_hash(p.patches))


@contextlib.contextmanager
def source_tree(kernel: Kernel, p: Plan, progress: Callable[[str], None] = lambda s: None) -> Iterator[Tuple[Path, Path]]:
    """(src, out): KERNEL's tree as plan P has it (commit and patches) and its configured build
    directory, in the warm directory with its lock held: for the kernel's build, and for what else is
    built from its own source, such as its selftests."""
    with cache_mod.locked(p.work, what=f"the warm build directory {p.work.name}"):
        src, out = _checkout(p, progress)
        progress("configuring")
        configure(src, out, kernel.source, BUILD_ENV)
        yield src, out


def _checkout(p: Plan, progress: Callable[[str], None]) -> Tuple[Path, Path]:
    """Check out P's commit with its patches in its warm directory (its lock held); (src, out)."""
    src, out = p.work / "src", p.work / "out"
    if not (src / ".git").exists():
        p.work.mkdir(parents=True, exist_ok=True, mode=0o700)
        with cache_mod.locked(p.repo, what=f"the source repository {p.repo.name}"):  # its worktree list
            git(p.repo, "worktree", "prune", what="git worktree prune")
            git(p.repo, "worktree", "add", "-q", "--detach", str(src), p.commit, timeout=1800, what="git worktree add")
    progress(f"applying {len(p.patches)} patches" if p.patches else "checking out the source")
    apply_patches(src, p.commit, p.patches)
    out.mkdir(parents=True, exist_ok=True)
    return src, out


def _build_in(src: Path, out: Path, staging: Path, progress: Callable[[str], None]) -> None:
    """Build the checked-out, configured SRC in OUT, and copy the artifacts into STAGING."""
    log_path = out.parent / "build.log"
    _make(src, out, BUILD_ENV, log_path, progress)
    staging.mkdir()
    for artifact in ARTIFACTS:
        if (out / artifact).exists():
            shutil.copy2(out / artifact, staging / Path(artifact).name)
    shutil.copy2(log_path, staging / "build.log")


def prune_warm(root: Path, keep: int) -> List[Path]:
    """Remove all but the KEEP most recently built warm directories under ROOT (each is gigabytes),
    never one another build is using; returns the removed ones. Their git worktree entries are pruned
    at the next checkout."""
    def last_used(d: Path) -> float:
        return (d / "build.log").stat().st_mtime if (d / "build.log").exists() else d.stat().st_mtime
    dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=last_used, reverse=True)
    removed = []
    for old in dirs[keep:]:
        if cache_mod.busy(old):
            continue
        log.info("removing the warm build directory %s (%d kept)", old, keep)
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def _make(src: Path, out: Path, env: Dict[str, str], log_path: Path, progress: Callable[[str], None]) -> None:
    jobs = (os.cpu_count() or 1) + 1
    argv = ["make", "-C", str(src), f"O={out}", f"-j{jobs}", "bzImage"]
    if shutil.which("ccache"):
        argv.insert(1, "CC=ccache gcc")
    t0 = time.monotonic()
    errors: List[str] = []
    with open(log_path, "w") as logf:
        logf.write(f"$ {process.command_line(argv, env)}\n")
        logf.flush()
        proc = process.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            # Bounded whether or not make prints: lines() kills make's whole group at the deadline.
            for line in process.lines(proc, t0 + BUILD_TIMEOUT, f"kernel build (see {log_path})"):
                logf.write(line)
                if re.search(r"\berror\b|Error \d", line) and len(errors) < 20:
                    errors.append(line.rstrip())
                if line.startswith("  CC ") or line.startswith("  LD "):
                    progress(f"building ({time.monotonic() - t0:.0f} s): {line.strip()}")
            proc.wait(timeout=60)
        finally:
            process.stop(proc)
    if proc.returncode != 0:
        raise BuildError("kernel build failed; first errors:\n" + "\n".join(errors[:10]) + f"\nfull log: {log_path}")
