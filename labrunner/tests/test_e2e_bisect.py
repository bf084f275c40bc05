"""End to end, real kernels: `labrunner bisect` names the injected commit in a synthetic history.

The history is a branch of small commits on the Debian 6.12 source the lab imports for stable-debug
(kept in the cache as a branch of that repository, so the states share stable-debug's warm build
directory and build in about a minute each); one commit is the injected lock-order bug. The algorithm's
accuracy on flaky bugs is measured by the simulated tests (test_bisect.py) and bench/bisect.py.
"""
import json
import subprocess

import pytest

from labrunner import config
from labrunner.build import kbuild

from .conftest import REPO
from .test_e2e import LABRUNNER

pytestmark = pytest.mark.e2e

BRANCH = "labrunner-e2e-bisect"
COMMITS, BUG_AT = 6, 4
GIT_ID = ["-c", "user.name=labrunner", "-c", "user.email=labrunner@localhost"]


def _history(tmp_path) -> str:
    """BRANCH: COMMITS commits on the imported source, the BUG_AT-th the injected bug; its base."""
    lab = config.load(REPO / "lab.yaml")
    repo, base = kbuild.source_commit(lab.kernels["stable-debug"].source, lab.cache_dir, lambda s: None)
    worktree = tmp_path / "history"
    git = lambda *args, cwd=worktree: subprocess.run(["git", *GIT_ID, *args], cwd=cwd, check=True,  # noqa: E731
                                                      capture_output=True, text=True, timeout=600)
    git("worktree", "add", "-q", "-f", "-B", BRANCH, str(worktree), base, cwd=repo)
    try:
        for i in range(1, COMMITS + 1):
            if i == BUG_AT:
                git("am", "-q", str(config.builtin.BUILTIN / "kernels" / "patches" / "inject" / "kvm-lock-order.patch"))
            else:  # harmless, but a real change to build: a comment in a KVM source file
                with open(worktree / "virt" / "kvm" / "binary_stats.c", "a") as f:
                    f.write(f"/* labrunner e2e bisect {i} */\n")
                git("commit", "-q", "-a", "-m", f"e2e: harmless change {i}")
    finally:
        git("worktree", "remove", "--force", str(worktree), cwd=repo)
    return base


def test_bisect_names_the_injected_commit(tmp_path):
    base = _history(tmp_path)
    p = subprocess.run([*LABRUNNER, "bisect", "--kernel", "stable-debug", "--good", base, "--bad", BRANCH,
                        "--test", "vm-churn-hotplug", "--duration", "20", "--results", str(tmp_path / "results")],
                       capture_output=True, text=True, timeout=2400)
    assert p.returncode == 0, p.stdout + p.stderr
    (folder,) = (tmp_path / "results").glob("bisect-*")
    doc = json.loads((folder / "bisect.json").read_text())
    [culprit] = doc["answer"]["culprits"]
    assert culprit["subject"].startswith("inject: take kvm_lock in the CPU-online callback"), doc["answer"]
    assert doc["bug"]["title"].startswith("possible deadlock in ")
    assert f"git bisect bad {culprit['commit']}" in (folder / "bisect.log").read_text()
    assert culprit["subject"] in p.stdout
