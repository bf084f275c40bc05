"""labrunner as an installed tool: a wheel in a fresh venv, a lab of one's own made by `labrunner init`
in a temporary folder, booted and run there (end to end, real QEMU); and image keys that depend on
contents, not on where a lab's folder is."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labrunner import config
from labrunner.build import image

from .conftest import REPO

HELLO_C = """\
#include <stdio.h>
#include "counts.h"  /* the built-in tests' lib/ is on the include path */
int main(void) { printf("hello from a lab of my own\\n"); return 0; }
"""


def _key(lab):
    keys = image.Keys(client_key=REPO, client_pub="client", host_key=REPO, host_pub="host")
    return image.image_key(lab, lab.images["minimal"], keys)[0]


def test_image_keys_are_by_content_not_place(tmp_path):
    checkout = config.load(REPO / "lab.yaml")
    copy = tmp_path / "elsewhere" / "recipe"
    shutil.copytree(config.builtin.BUILTIN / "images" / "minimal", copy)
    for recipe in (str(copy), "elsewhere/recipe", str(config.builtin.BUILTIN / "images" / "minimal"), "minimal"):
        (tmp_path / "lab.yaml").write_text(f"images:\n  minimal:\n    recipe: {recipe}\n")
        assert _key(config.load(tmp_path / "lab.yaml")) == _key(checkout), recipe
    (tmp_path / "tests" / "mine").mkdir(parents=True)
    (tmp_path / "tests" / "mine" / "run.sh").write_text("#!/bin/sh\necho mine\n")
    assert _key(config.load(tmp_path / "lab.yaml")) != _key(checkout)  # a test of its own is content


def test_a_lab_yaml_that_cannot_be_used_is_a_located_error(tmp_path):
    (tmp_path / "lab.yaml").write_text("images:\n  minimal:\n    recipe: /nonexistent/recipe\n")
    p = subprocess.run([sys.executable, "-m", "labrunner.cli", "--lab", str(tmp_path / "lab.yaml"), "config", "check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert f"{tmp_path / 'lab.yaml'}:3: images.minimal.recipe: /nonexistent/recipe has no recipe.yaml" in p.stderr


def test_init_never_overwrites(tmp_path):
    path = config.write_starter(tmp_path)
    assert config.load(path).defaults.kernel == "debian-6.12"
    with pytest.raises(Exception, match="exists; labrunner init never overwrites"):
        config.write_starter(tmp_path)


@pytest.mark.e2e
def test_an_installed_wheel_runs_a_lab_of_ones_own(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "labrunner", src / "labrunner", ignore=lambda folder, names: [  # not the test suite
        n for n in names if n == "__pycache__" or (n == "tests" and folder == str(REPO / "labrunner"))])
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    def run(*argv, **kw) -> subprocess.CompletedProcess:
        p = subprocess.run(argv, capture_output=True, text=True, **kw)
        assert p.returncode == 0, f"{argv}: {p.stdout}{p.stderr}"
        return p
    run(sys.executable, "-m", "venv", str(tmp_path / "venv"))
    pip = str(tmp_path / "venv" / "bin" / "pip")
    run(pip, "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"), str(src), timeout=600)
    (wheel,) = (tmp_path / "wheel").glob("labrunner-*.whl")
    run(pip, "install", "-q", str(wheel), timeout=900)
    labrunner = str(tmp_path / "venv" / "bin" / "labrunner")
    # A user of its own (HOME), with the machine's cache of kernels and images (by content: shared).
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path / "home"),
           "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")}
    if "LABRUNNER_CACHE" in os.environ:
        env["LABRUNNER_CACHE"] = os.environ["LABRUNNER_CACHE"]

    init = run(labrunner, "init", str(tmp_path / "mylab"), cwd=tmp_path, env=env, timeout=60)
    lab = tmp_path / "mylab" / "lab.yaml"
    assert str(lab) in init.stdout
    (tmp_path / "mylab" / "tests" / "hello").mkdir(parents=True)
    (tmp_path / "mylab" / "tests" / "hello" / "hello.c").write_text(HELLO_C)
    (tmp_path / "mylab" / "tests" / "hello" / "run.sh").write_text("#!/bin/sh\nexec /lab/tests/hello/hello\n")
    lab.write_text(lab.read_text().replace("tests:\n", textwrap.dedent("""\
        tests:
          hello:
            command: /lab/tests/hello/run.sh
            duration: 5
        """), 1))

    check = run(labrunner, "--lab", str(lab), "config", "check", cwd=tmp_path, env=env, timeout=60)
    builtin_tests = len(config.load(config.builtin.LAB).tests)
    assert check.stdout.startswith(f"{lab}: ok:") and f"{builtin_tests + 1} tests" in check.stdout
    boot = run(labrunner, "--lab", str(lab), "boot", "--", "uname", "-r", cwd=tmp_path, env=env, timeout=900)
    assert boot.stdout.strip().endswith("-amd64"), boot.stdout  # the Debian kernel's release
    mine = subprocess.run([labrunner, "run", "hello"], cwd=tmp_path / "mylab", env=env, capture_output=True,
                          text=True, timeout=900)  # lab.yaml found from the current folder
    assert mine.returncode == 0, mine.stdout + mine.stderr
    (run_dir,) = (tmp_path / "mylab" / "results").iterdir()
    assert "hello from a lab of my own" in (run_dir / "workload.log").read_text()
    assert (run_dir / "report.html").is_file()
