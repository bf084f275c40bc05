"""config: lab.yaml, loaded and validated into frozen dataclasses the rest of the lab reads.

Every part of the lab may import this package; it imports only labrunner.errors. Each section's
schema sits in its own module (machines, kernels, images, tests, suites, reports), written in
schema.py's small declarative checkers, so a new section is a new module and a row in lab.load(), and every mistake
reads "FILE:LINE: key.path: message" (exit 2). Paths in the file are relative to its folder, the
lab's root (images/, tests/, kernels/, results/).
"""

from . import builtin
from .images import Image, load_recipe
from .kernels import Kernel, SourceRecipe
from .lab import Defaults, Lab, find_lab, load
from .machines import ACCELS, Machine, QemuConfig
from .reports import Reports
from .schema import load_yaml
from .starter import write_starter
from .suites import KnownIssue, Suite, SuiteEntry
from .tests import HotplugSpec, Test, Timeouts

__all__ = ["ACCELS", "Defaults", "HotplugSpec", "Image", "Kernel", "KnownIssue", "Lab", "Machine", "QemuConfig",
           "Reports", "SourceRecipe", "Suite", "SuiteEntry", "Test", "Timeouts", "builtin", "find_lab", "load",
           "load_recipe", "load_yaml", "write_starter"]
