"""labrunner: boot patched kernels in QEMU guests that run KVM, hot-plug their vCPUs, and judge the result.

The package's parts, each a folder, from the bottom up (tests/test_layout.py enforces who imports whom):
- errors, process: the error hierarchy (exit 1/2/3) and bounded child processes; any part may use them;
- config: lab.yaml, validated, one module per section;
- analysis: pure parsers of what the kernel said (splats, symbols);
- build: what a guest boots (kernels, the initramfs image);
- machine: one booted guest (QEMU, QMP, console, guest commands, vCPU hotplug);
- run: one test on one kernel, to a verdict and a results folder;
- cli: the command line, which only parses arguments and calls the parts.
"""

__version__ = "0.1.0"
