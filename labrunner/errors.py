"""The lab's error hierarchy: whose fault it is decides the exit status.

- UserError (exit 2): a mistake in lab.yaml or on the command line; fix the input.
- InfraError (exit 3): the host failed (QEMU crashed, no boot, no SSH, apt, gcc); not the kernel's fault.
A kernel failure is not an exception but a verdict ("fail", exit 1) recorded in run.json.
Interrupted (128 + the signal) is not an error: it unwinds everything, as KeyboardInterrupt does.
"""

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USER = 2
EXIT_INFRA = 3


class LabError(Exception):
    exit_code = EXIT_INFRA


class UserError(LabError):
    exit_code = EXIT_USER


class ConfigError(UserError):
    """A problem in a configuration file, located by file, line and key path."""

    def __init__(self, path, line, key, message):
        self.path, self.line, self.key = path, line, key
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")


class InfraError(LabError):
    exit_code = EXIT_INFRA


class BuildError(LabError):
    """The kernel did not build: the kernel's failure (exit 1), with the compiler's first errors."""
    exit_code = EXIT_FAIL


class QemuError(InfraError):
    """QEMU failed to start or died; keeps the tail of its stderr."""

    def __init__(self, message, stderr_tail=""):
        self.stderr_tail = stderr_tail
        super().__init__(message + (f"\n--- qemu stderr (tail) ---\n{stderr_tail}" if stderr_tail else ""))


class Interrupted(BaseException):
    """A signal (SIGINT, SIGTERM, SIGHUP) asked labrunner to stop: it unwinds like Ctrl-C, so every QEMU
    is stopped on the way out and the run is recorded as interrupted by that signal."""

    def __init__(self, signal_name: str, exit_code: int):
        self.signal_name, self.exit_code = signal_name, exit_code
        super().__init__(signal_name)
