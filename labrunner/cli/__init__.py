"""labrunner's command line: parses arguments, calls the library, prints, and picks the exit status.

Exit status: 0 pass, 1 kernel failure (a verdict), 2 usage or configuration error, 3 infrastructure
error (QEMU crashed, no boot, no SSH). `boot -- CMD` exits with CMD's own status. The lab's own
commands (nightly, results) are in cli/lab.py.

Each command imports the library parts only it uses: a one-off boot does not wait for the splat
parser's tables, paramiko, kcidb-io's schemas or Jinja2 to load.
"""

import argparse
import json
import logging
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

from .. import __version__, config
from ..build import kbuild
from ..errors import EXIT_FAIL, EXIT_INFRA, EXIT_PASS, EXIT_USER, Interrupted, LabError, UserError
from ..machine.guest import CommandTimeout
from ..machine.session import BootSpec, Session
from ..run.verdict import ERROR, FAIL, PASS
from . import lab as lab_cli

VERDICT_EXIT = {PASS: EXIT_PASS, FAIL: EXIT_FAIL, ERROR: EXIT_INFRA}


class Progress:
    """A live 'phase, elapsed time' line on a terminal's stderr; silent when stderr is not a terminal."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.enabled = stream.isatty()
        self.phase = ""
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        if self.enabled:
            self._thread.start()

    def __call__(self, phase: str) -> None:
        self.phase = phase
        self._draw()

    def _draw(self) -> None:
        if self.enabled and self.phase:
            width = shutil.get_terminal_size().columns - 1
            line = f"[{time.monotonic() - self.t0:6.1f}s] {self.phase}"
            self.stream.write("\r\033[K" + line[:width])
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._draw()

    def close(self) -> None:
        self._stop.set()
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _load(args) -> config.Lab:
    return config.load(args.lab or config.find_lab())  # None: the built-in lab alone


def cmd_init(args) -> int:
    path = config.write_starter(args.dir)
    print(f"wrote {path}; try: labrunner --lab {shlex.quote(str(path))} boot -- uname -r")
    return EXIT_PASS


def cmd_config_check(args) -> int:
    lab = _load(args)
    test = lab.tests[lab.defaults.test]
    where = lab.path if lab.path != config.builtin.LAB else f"the built-in lab {lab.path} (results in {lab.root})"
    print(f"{where}: ok: {len(lab.machines)} machines, {len(lab.kernels)} kernels, "
          f"{len(lab.images)} images, {len(lab.tests)} tests; default test '{test.name}' "
          f"on kernel '{test.kernel or lab.defaults.kernel}'")
    return EXIT_PASS


def cmd_prepare(args) -> int:
    """Get or build the kernels, build the image, probe the accelerator: everything a boot needs, for the
    default (one-off boot) kernel and the default test's kernel."""
    lab = _load(args)
    kernels = [args.kernel] if args.kernel else list(dict.fromkeys(
        [lab.defaults.kernel, lab.tests[lab.defaults.test].kernel or lab.defaults.kernel]))
    progress = Progress()
    sessions = []
    try:
        for name in kernels:
            session = Session(lab, BootSpec(kernel=name, image=args.image), Path("."), progress)
            session.prepare()
            sessions.append(session)
    finally:
        progress.close()
    for session in sessions:
        print(f"kernel  {session.kernel.name}: {session.kernel.release} ({session.kernel.source})")
    print(f"initrd  {sessions[-1].initrd}")
    print(f"qemu    {sessions[-1].qemu_version}, accel {sessions[-1].accel.name}: {sessions[-1].accel.reason}")
    return EXIT_PASS


def cmd_boot(args) -> int:
    lab = _load(args)
    command: List[str] = args.command[1:] if args.command[:1] == ["--"] else args.command
    outdir = Path(tempfile.mkdtemp(prefix="labrunner-boot-"))
    # One word is a shell command line as typed; several are an argv, quoted as such.
    line = (command[0] if len(command) == 1 else shlex.join(command)) if command else None
    spec = BootSpec(kernel=args.kernel, machine=args.machine, image=args.image, cmdline=args.cmdline,
                    boot_timeout=args.boot_timeout, ssh=bool(command) and args.ssh, hotplug=args.hotplug,
                    oneshot=line if command and not (args.ssh or args.serial) else None)
    progress = Progress()
    keep = True
    session = None
    try:
        with Session(lab, spec, outdir, progress, output=(_writer(sys.stdout), _writer(sys.stderr))) as session:
            progress.close()
            if not command:
                print(f"labrunner: console of {session.kernel.name} ({session.kernel.release}); "
                      f"Ctrl-] leaves and powers off", file=sys.stderr)
                why = session.console.interact(sys.stdin.fileno(), sys.stdout.fileno())
                print(f"\nlabrunner: {why}; powering off", file=sys.stderr)
                keep = False
                return EXIT_PASS
            if spec.oneshot is not None:
                status = session.oneshot_status(args.timeout)
            elif args.serial:
                shell = session.serial_shell()
                shell.wait_prompt(60)
                status, out = shell.run(line, args.timeout)
                sys.stdout.write(out)
            else:
                status = session.ssh.run(line, args.timeout, stdout=_writer(sys.stdout), stderr=_writer(sys.stderr))
            session.phases.mark("command_done")
            keep = False
            return status
    except CommandTimeout as e:
        print(f"labrunner: {e}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        progress.close()
        if session is not None and args.verbose:
            print(f"labrunner: phases: {session.phases.describe()}", file=sys.stderr)
        if keep and any(outdir.iterdir()):  # empty when the boot ended before QEMU started
            print(f"labrunner: console.log and qemu.stderr kept in {outdir}", file=sys.stderr)
        else:
            shutil.rmtree(outdir, ignore_errors=True)


def _writer(stream):
    def write(data: bytes) -> None:
        stream.buffer.write(data)
        stream.flush()
    return write


def cmd_run(args) -> int:
    from ..run import runner
    lab = _load(args)
    progress = Progress()
    try:
        result = runner.run_test(lab, args.test, kernel=args.kernel, results=args.results, duration=args.duration,
                               stop_on_first_splat=args.stop_on_first_splat or None,
                               kernel_artifacts=args.kernel_artifacts, progress=progress)
    finally:
        progress.close()
    run_dir = (args.results or lab.results_dir) / result["id"]
    print(f"{result['verdict'].upper()}: {result['test']} on {result['kernel'].get('name')} "
          f"({result['kernel'].get('release') or 'release unknown'}): {result['reason']}")
    if result.get("flags"):
        print(f"flags: {', '.join(result['flags'])}")
    print(f"results: {run_dir}")  # the line an executor reads: before anything that could fail
    from ..report import files as report_files  # Jinja2 and junitparser: a boot has no use for them
    print(f"report: {report_files.write_run(run_dir, lab)}")
    return VERDICT_EXIT[result["verdict"]]


def cmd_splats(args) -> int:
    """Like grep: 0 when no report was found, 1 when one was, 2 on error."""
    from ..analysis import splats, symbols
    found = {}
    for path in args.files:
        try:
            found[str(path)] = splats.parse_file(path)
        except OSError as e:
            print(f"labrunner: error: {path}: {e.strerror}", file=sys.stderr)
            return EXIT_USER
    dump = {p: [r.to_dict() for r in reports] for p, reports in found.items()}
    if args.vmlinux:
        if not args.vmlinux.is_file():
            print(f"labrunner: error: {args.vmlinux}: no such file", file=sys.stderr)
            return EXIT_USER
        try:
            symbols.symbolize([r for reports in dump.values() for r in reports], args.vmlinux)
        except LabError as e:
            print(f"labrunner: error: {e}", file=sys.stderr)
            return EXIT_USER
    if args.json:
        print(json.dumps(dump[str(args.files[0])] if len(args.files) == 1 else dump, indent=2))
    else:
        for path, reports in found.items():
            for r, d in zip(reports, dump[path]):
                prefix = f"{path}:" if len(args.files) > 1 else ""
                print(f"{prefix}{r.start_line}-{r.end_line}: {r.title} [{r.type}{', corrupted' if r.corrupted else ''}]")
                if args.vmlinux:
                    for frame in d["frames"]:
                        print(f"    {frame['function']}  {frame.get('source', '?')}")
    return EXIT_FAIL if any(found.values()) else EXIT_PASS


def cmd_kernel_build(args) -> int:
    lab = _load(args)
    kernel = lab.pick("kernels", args.name)
    if kernel.kind != "source":
        raise UserError(f"kernel '{kernel.name}' is a {kernel.kind} kernel; only source recipes are built")
    progress = Progress()
    t0 = time.monotonic()
    try:
        built = kbuild.build(kernel, lab.cache_dir, progress, extra_patches=args.patches)
    finally:
        progress.close()
    print(f"{kernel.name}: built in {time.monotonic() - t0:.0f} s, key {built.key}")
    print(f"  {built.bzimage}\n  build log: {built.dir / 'build.log'}")
    return EXIT_PASS


def cmd_kernel_list(args) -> int:
    lab = _load(args)
    for kernel in lab.kernels.values():
        if kernel.kind == "source":
            key, built = kbuild.cached(kernel, lab.cache_dir)
            if built is None:
                state = "not built"
            elif key is None:
                state = f"built, key {built.key} (its source is not in the cache: not checked against the recipe)"
            elif built.key == key:
                state = f"built, key {built.key}"
            else:  # the recipe changed since (a fragment, a patch, the compiler)
                state = f"not built as the recipe stands (key {key}); an older build has key {built.key}"
        else:
            state = str(kernel.path) if kernel.kind == "path" else f"{kernel.package} ({kernel.suite or 'default suite'})"
        default = " (default)" if kernel.name == lab.defaults.kernel else ""
        print(f"{kernel.name:24} {kernel.kind:7} {state}{default}")
    return EXIT_PASS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="labrunner",
        description="Boot kernels in QEMU guests that run KVM, hot-plug their vCPUs, and judge the result.",
        epilog="Exit status: 0 pass, 1 kernel failure, 2 usage/config error, 3 infrastructure error.")
    p.add_argument("--version", action="version", version=f"labrunner {__version__}")
    p.add_argument("--lab", type=Path, help="lab.yaml to use (default: $LABRUNNER_LAB, else the nearest lab.yaml from the current "
                        "folder up, else the built-in lab)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log each step's command line (-vv: debug)")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    b = sub.add_parser("boot", help="one-off boot: a console, or run one command and power off",
                       description="Boot a kernel now. Without CMD: an interactive serial console (Ctrl-] "
                                   "leaves). With CMD: run it in the guest, print its output exactly (stdout and "
                                   "stderr apart, binary too), power off, and exit with its status. CMD runs "
                                   "without a network, its output on two extra serial ports: the fastest way; a "
                                   "modular kernel's KVM modules load when CMD first opens /dev/kvm. --ssh runs "
                                   "it over SSH instead (with the guest's network), --serial in the console's "
                                   "shell; both load KVM at boot. -v shows where the boot's time went.",
                       epilog="example: labrunner boot --kernel debian-6.12 -- uname -r")
    b.add_argument("--kernel", help="kernel name from lab.yaml (default: defaults.kernel)")
    b.add_argument("--machine", help="machine name from lab.yaml (default: defaults.machine)")
    b.add_argument("--image", help="image name from lab.yaml (default: defaults.image)")
    b.add_argument("--cmdline", default="", help="extra kernel command line")
    b.add_argument("--serial", action="store_true", help="run CMD in the serial console's shell")
    b.add_argument("--ssh", action="store_true", help="run CMD over SSH (the guest gets its network)")
    b.add_argument("--hotplug", action="store_true",
                   help="boot with the machine's vCPU hotplug shape (spare slots, hot-pluggable vCPUs); "
                        "by default a one-off boot has only the CPUs it runs")
    b.add_argument("--timeout", type=float, default=600, help="seconds CMD may run (default: 600)")
    b.add_argument("--boot-timeout", type=float, default=300, help="seconds the guest may take to boot")
    b.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="command to run in the guest")
    b.set_defaults(func=cmd_boot)

    r = sub.add_parser("run", help="run a test from lab.yaml and record it in a results directory",
                       description="Boot, run TEST's workload, collect console.log, dmesg.txt, qmp.jsonl, "
                                   "qemu.stderr and run.json in a new results directory.",
                       epilog="Exit status: 0 pass, 1 fail (kernel failure), 2 config error, 3 infrastructure error.")
    r.add_argument("test", nargs="?", help="test name from lab.yaml (default: defaults.test)")
    r.add_argument("--kernel", help="kernel name from lab.yaml (default: defaults.kernel)")
    r.add_argument("--results", type=Path, help="results root (default: results/ beside lab.yaml)")
    r.add_argument("--duration", type=int, help="workload duration in seconds (default: the test's)")
    r.add_argument("--stop-on-first-splat", action="store_true",
                   help="end the run at the first kernel report that is not ignored (for bisecting: a bad "
                        "commit fails fast)")
    r.add_argument("--kernel-artifacts", type=Path, metavar="DIR",
                   help="boot --kernel as another lab host resolved it: a folder `labrunner worker` installed "
                        "under kernels/shipped/ in the cache")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("init", help="write a starter lab.yaml of your own into DIR",
                       description="Write a small, commented lab.yaml into DIR (default: the current folder) "
                                   "that uses the built-in machine, image, kernels and tests by name and shows "
                                   "how to add your own kernel tree, a patch series and a test. Never overwrites.",
                       epilog="Then: labrunner --lab DIR/lab.yaml boot -- uname -r (or cd DIR: lab.yaml is "
                              "found from the current folder up).")
    i.add_argument("dir", nargs="?", type=Path, default=Path("."), help="the lab's folder")
    i.set_defaults(func=cmd_init)

    c = sub.add_parser("config", help="configuration commands")
    csub = c.add_subparsers(dest="config_cmd", metavar="SUBCOMMAND", required=True)
    cc = csub.add_parser("check", help="validate lab.yaml; errors name the line",
                         description="Load and validate lab.yaml. Exit 0 if valid, 2 with FILE:LINE: KEY: "
                                     "message otherwise.")
    cc.set_defaults(func=cmd_config_check)

    k = sub.add_parser("kernel", help="kernels built from source recipes")
    ksub = k.add_subparsers(dest="kernel_cmd", metavar="SUBCOMMAND", required=True)
    kb = ksub.add_parser("build", help="build a source kernel (at once from the cache if unchanged)",
                         description="Build kernel NAME from its recipe in lab.yaml: source, patches (git am), "
                                     "config fragments. Artifacts are cached by content; a failed build exits 1 "
                                     "with the compiler's first errors.",
                         epilog="example: labrunner kernel build stable-debug --patches ~/series.mbox")
    kb.add_argument("name", metavar="NAME")
    kb.add_argument("--patches", type=Path, action="append", default=[],
                    help="a patch, series file or mbox to apply on top, one-off (repeatable)")
    kb.set_defaults(func=cmd_kernel_build)
    kl = ksub.add_parser("list", help="kernels in lab.yaml, and whether each source kernel is built")
    kl.set_defaults(func=cmd_kernel_list)

    sp = sub.add_parser("splats", help="find kernel bug reports in console logs (exit 1 if any, like grep)",
                        description="Print each kernel report (WARNING, lockdep, BUG, KASAN, hangs, ...) in the "
                                    "given console logs, with a syzbot-compatible title, its type and line range.",
                        epilog="Exit status: 0 no report, 1 at least one report, 2 error.")
    sp.add_argument("--json", action="store_true",
                    help="JSON: one file gives an array of reports; several give an object keyed by path")
    sp.add_argument("--vmlinux", type=Path, metavar="VMLINUX",
                    help="the kernel's vmlinux, with line tables: print each frame's file:line")
    sp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    sp.set_defaults(func=cmd_splats)

    pr = sub.add_parser("prepare", help="get or build the kernels, build the image, probe the accelerator",
                        description="Do everything a boot needs ahead of time, for the default kernel and the "
                                    "default test's kernel (make run and make test call it).")
    pr.add_argument("--kernel", help="only this kernel from lab.yaml")
    pr.add_argument("--image", help="image name from lab.yaml (default: defaults.image)")
    pr.set_defaults(func=cmd_prepare)
    lab_cli.add_parsers(sub, call=lambda args: args.lab_func(args, _load(args), Progress()))
    return p


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name, 128 + signum)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="labrunner: %(message)s")
    logging.getLogger().handlers[0].setLevel(level)  # a run's own log file may take more than stderr shows
    logging.getLogger("labrunner").setLevel(level)
    if args.verbose < 2:
        for noisy in ("qemu", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # paramiko logs each failed attempt of a wait for SSH as an ERROR with its traceback; the
        # wait's own error says what failed, once.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every QEMU is stopped on the way out. SIGINT too, even
    # when a non-interactive shell started labrunner in the background with SIGINT ignored.
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _interrupt)
    try:
        return args.func(args)
    except LabError as e:
        print(f"labrunner: error: {e}", file=sys.stderr)
        return e.exit_code
    except Interrupted as e:
        print(f"labrunner: interrupted by {e.signal_name}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `labrunner splats ... | head`: the reader has seen enough
        sys.stdout = None  # nothing more to flush into the closed pipe at exit
        return 141
