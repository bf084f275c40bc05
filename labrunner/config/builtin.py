"""The built-in lab, shipped as package data in labrunner/builtin/: its lab.yaml (machines, kernels,
images, tests, suites) and the files it names (images/, tests/, kernels/ fragments and patches).

Every lab.yaml is read on top of it: an entry of the same name replaces the built-in one, a new name
adds to them, and a relative path not found beside the user's lab.yaml falls back to a built-in file
of that name (fragment `kvm` is kernels/fragments/kvm.config, image recipe `minimal` images/minimal).
"""

from pathlib import Path

BUILTIN = Path(__file__).resolve().parents[1] / "builtin"
LAB = BUILTIN / "lab.yaml"
TESTS = BUILTIN / "tests"
IMAGES = (BUILTIN / "images", BUILTIN)
FRAGMENTS = (BUILTIN / "kernels" / "fragments", BUILTIN)
PATCHES = (BUILTIN / "kernels" / "patches", BUILTIN)
