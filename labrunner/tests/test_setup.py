"""The host set-up script's decisions that do not need root: is a backports source in force?"""
import subprocess

import pytest

from .conftest import REPO

CODENAME = subprocess.run(["sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME"], capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.parametrize("text,configured", [
    (f"deb http://mirror.invalid/debian {CODENAME} main\n", False),
    (f"# deb http://mirror.invalid/debian {CODENAME}-backports main\n", False),
    (f"   #deb http://mirror.invalid/debian {CODENAME}-backports main\n", False),
    (f"deb http://mirror.invalid/debian {CODENAME}-backports main\n", True),
    (f"deb [arch=amd64] http://mirror.invalid/debian {CODENAME}-backports main contrib\n", True),
    (f"Types: deb\nURIs: http://mirror.invalid/debian\nSuites: {CODENAME} {CODENAME}-backports\n", True),
    (f"Types: deb\nURIs: http://mirror.invalid/debian\n# Suites: {CODENAME}-backports\n", False),
])
def test_only_backports_lines_in_force_count(tmp_path, text, configured):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / ("x.sources" if "Types:" in text else "x.list")).write_text(text)
    p = subprocess.run(["bash", str(REPO / "scripts" / "setup-host.sh"), "--has-backports"], capture_output=True,
                       text=True, env={"LABRUNNER_APT_ETC": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=30)
    assert (p.returncode == 0) == configured, p.stderr
