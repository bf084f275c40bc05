import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def write_lab(tmp_path):
    """Write a lab.yaml (and a minimal image recipe) in a temporary lab root; return its path."""
    recipe = tmp_path / "images" / "minimal"
    recipe.mkdir(parents=True)
    (recipe / "recipe.yaml").write_text("binaries: [/bin/busybox]\n")
    (tmp_path / "bzImage").write_bytes(b"\0" * 0x202 + b"HdrS")

    def write(text: str) -> Path:
        path = tmp_path / "lab.yaml"
        path.write_text(textwrap.dedent(text))
        return path
    return write


GOOD = """\
qemu:
  accel: auto
machines:
  default:
    cpus: 2
    max_cpus: 4
    memory: 1G
kernels:
  k:
    path: bzImage
images:
  minimal:
    recipe: images/minimal
tests:
  smoke:
    command: /bin/true
    duration: 5
defaults:
  kernel: k
  machine: default
  image: minimal
  test: smoke
"""
