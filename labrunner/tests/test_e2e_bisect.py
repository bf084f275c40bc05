"""End to end, real kernels: `labrunner bisect` names the injected commit in a synthetic history, and
the injected patch when the same history is an mbox of patches on its base.

The history is a branch of small commits on the Debian 6.12 source the lab imports for stable-debug
(kept in the cache as a branch of that repository, so the states share stable-debug's warm build
directory and build in about a minute each); one commit is the injected lock-order bug. The algorithm's
accuracy on flaky bugs is measured by the simulated tests (test_bisect.py) and bench/bisection.py.
"""
import json
import os
import shutil
import subprocess

import pytest

from labrunner import config
from labrunner.build import kbuild

from .conftest import REPO
from .test_e2e import LABRUNNER

pytestmark = pytest.mark.e2e

BRANCH = "labrunner-e2e-bisect"
COMMITS, BUG_AT = 5, 3
# The lab's churn test, short, with tight boot and SSH bounds: a guest that does not come up (a rare
# virtio-net TX timeout under TCG) is an error the bisection sets aside, and should cost little time.
# The guest's own CPU offline/online toggling is enough for the lock-order bug. Without host hotplug
# there is no ACPI eject, so no "possible deadlock in __kernfs_remove" (README: findings): with it, about
# one run in three told the bisection nothing, as lockdep is off after that report.
LAB = """tests:
  bisect-churn:
    command: /lab/tests/vm-churn-hotplug/run.sh
    duration: 10
    cmdline: kvm.enable_virt_at_load=0
    env: {LAB_THREADS: 2, LAB_VCPUS: 2, LAB_TOGGLE_MS: 300}
    timeouts: {boot: 90, ssh: 30, hang: 60}
"""
GIT_ID = ["-c", "user.name=labrunner", "-c", "user.email=labrunner@localhost"]


def history(tmp_path, commits: int = COMMITS, bug_at: int = BUG_AT, patch: str = "kvm-lock-order",
            branch: str = BRANCH) -> str:
    """BRANCH: COMMITS commits on the imported source, the BUG_AT-th the injected bug PATCH
    (kernels/patches/inject/PATCH.patch); its base. bench/bisect_real.py makes one too. Made with git's
    plumbing in an index of its own: checking out the kernel's 80,000 files would take 20 s or more."""
    lab = config.load(REPO / "lab.yaml")
    repo, base = kbuild.source_commit(lab.kernels["stable-debug"].source, lab.cache_dir, lambda s: None)
    index = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "history.index")}

    def git(*args, stdin=None, env=None) -> str:
        return subprocess.run(["git", *GIT_ID, *args], cwd=repo, env={**index, **(env or {})}, input=stdin,
                              check=True, capture_output=True, text=True, timeout=600).stdout

    git("read-tree", base)
    head = base
    for i in range(1, commits + 1):
        author = {}
        if i == bug_at:
            path = config.builtin.BUILTIN / "kernels" / "patches" / "inject" / f"{patch}.patch"
            git("apply", "--cached", str(path))
            info = git("mailinfo", str(tmp_path / "msg"), str(tmp_path / "diff"), stdin=path.read_text())
            fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
            message = f"{fields['Subject']}\n\n{(tmp_path / 'msg').read_text()}"
            author = {"GIT_AUTHOR_NAME": fields["Author"], "GIT_AUTHOR_EMAIL": fields["Email"],
                      "GIT_AUTHOR_DATE": fields["Date"]}
        else:  # harmless, but a real change to build: a comment in a KVM source file
            stats = "virt/kvm/binary_stats.c"
            text = git("cat-file", "blob", f"{head}:{stats}") + f"/* labrunner e2e bisect {i} */\n"
            blob = git("hash-object", "-w", "--stdin", stdin=text).strip()
            git("update-index", "--cacheinfo", f"100644,{blob},{stats}")
            message = f"e2e: harmless change {i}"
        head = git("commit-tree", git("write-tree").strip(), "-p", head, "-m", message, env=author).strip()
    git("branch", "-f", branch, head)
    return base


@pytest.fixture(scope="module")
def bisected(tmp_path_factory):
    """The history (made once for both tests), and what each bisection built: the kernels this module's
    states built are removed at its end (about 110 MB each; their commits are new each time)."""
    tmp = tmp_path_factory.mktemp("history")
    base = history(tmp)
    built = config.load(REPO / "lab.yaml").cache_dir / "kernels" / "built"
    before = _built(built)
    yield {"base": base, "built": built, "commits": None}
    for path in _built(built) - before:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _built(folder):
    return set(folder.glob("stable-debug-bisect-*"))


def bisect(tmp_path, *what):
    (tmp_path / "lab.yaml").write_text(LAB)
    p = subprocess.run([*LABRUNNER[:-2], "--lab", str(tmp_path / "lab.yaml"), "bisect", "--kernel", "stable-debug",
                        *what, "--test", "bisect-churn", "--results", str(tmp_path / "results")],
                       capture_output=True, text=True, timeout=2400)
    assert p.returncode == 0, p.stdout + p.stderr
    (folder,) = (tmp_path / "results").glob("bisect-*")
    doc = json.loads((folder / "bisect.json").read_text())
    assert doc["bug"]["title"].startswith("possible deadlock in ")
    [culprit] = doc["answer"]["culprits"]
    assert culprit["subject"].startswith("inject: take kvm_lock in the CPU-online callback"), doc["answer"]
    assert culprit["subject"] in p.stdout
    assert f"git bisect bad {culprit['commit']}" in (folder / "bisect.log").read_text()
    return doc, culprit


def test_bisect_names_the_injected_commit(tmp_path, bisected):
    doc, culprit = bisect(tmp_path, "--good", bisected["base"], "--bad", BRANCH)
    assert culprit["label"] == culprit["commit"][:12]
    bisected["commits"] = doc["states"]


def test_bisect_names_the_injected_patch_of_a_series(tmp_path, bisected):
    """The same changes as an mbox of patches on the base (git format-patch): their states are commits
    of the same trees, so those the commit bisection built are not built again."""
    lab = config.load(REPO / "lab.yaml")
    repo, _ = kbuild.source_commit(lab.kernels["stable-debug"].source, lab.cache_dir, lambda s: None)
    mbox = subprocess.run(["git", "-C", str(repo), "format-patch", "--stdout", f"{bisected['base']}..{BRANCH}"],
                          check=True, capture_output=True, text=True, timeout=120).stdout
    (tmp_path / "series.mbox").write_text(mbox)
    before = _built(bisected["built"])
    doc, culprit = bisect(tmp_path, "--series", str(tmp_path / "series.mbox"), "--base", bisected["base"])
    assert culprit["label"] == f"patch {BUG_AT}" and culprit["patches"] == BUG_AT
    new = _built(bisected["built"]) - before
    if bisected["commits"]:  # the commit bisection ran first
        again = [i for i, s in enumerate(doc["states"]) if s["built"] and bisected["commits"][i]["built"]]
        assert again and len(new) == sum(s["built"] for s in doc["states"]) - len(again), (again, new)
