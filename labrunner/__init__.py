"""labrunner: boot patched kernels in QEMU guests that run KVM, hot-plug their vCPUs, and judge the result."""

__version__ = "0.1.0"
