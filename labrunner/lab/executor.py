"""Executors: where a nightly's runs happen. A Job is a `labrunner run` command line and nothing more,
so a run is the same wherever it runs; an executor only decides where and how many at once.

The local executor runs up to SLOTS jobs at once, each as its own `labrunner run` process group, and
stops them all (each stops its QEMU and records "interrupted by SIGTERM") when it is shut down. The
in-process one runs a job at once, in the caller's own process (a bisection with one slot).
Under TCG every vCPU is a host thread, so auto_slots() never gives more guests than the host's cores
and free memory carry: an oversubscribed host turns slow guests into false hangs.
"""

import abc
import concurrent.futures
import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from .. import process
from ..config import Lab, Machine, Test

log = logging.getLogger(__name__)

GUEST_OVERHEAD_MIB = 256  # QEMU's own memory beside the guest's


@dataclasses.dataclass(frozen=True)
class Job:
    lab: Path  # lab.yaml
    test: str
    kernel: str
    results: Path  # the run's folder is made in here
    duration: Optional[int]
    stop_on_first_splat: bool
    timeout: float  # every wait has a bound: the run's own bounds, and some
    kernel_artifacts: Optional[Path] = None  # the kernel as another host resolved it (build.shipment)

    def argv(self, labrunner: Sequence[str]) -> List[str]:
        argv = [*labrunner, "--lab", str(self.lab), "run", self.test, "--kernel", self.kernel,
                "--results", str(self.results)]
        if self.kernel_artifacts is not None:
            argv += ["--kernel-artifacts", str(self.kernel_artifacts)]
        if self.duration is not None:
            argv += ["--duration", str(self.duration)]
        if self.stop_on_first_splat:
            argv.append("--stop-on-first-splat")
        return argv


def run_bound(test: Test, duration: Optional[int]) -> float:
    """How long a `labrunner run` of TEST (for DURATION, else its own) may take: its own bounds, and some."""
    t = test.timeouts
    return t.boot + t.ssh + (duration or test.duration) + t.workload_grace + t.hang + 600


class Executor(abc.ABC):
    """Runs Jobs; each future's result is the run's run.json record (with "run_dir")."""

    slots: int

    @abc.abstractmethod
    def submit(self, job: Job) -> "concurrent.futures.Future[Dict[str, Any]]":
        ...

    def stop(self, job: Job) -> None:
        """Stop JOB if it is under way; its future then gives the run's record of the interruption."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop every run under way, and their guests with them."""

    def describe(self) -> str:
        return f"{self.slots} slot{'s' if self.slots != 1 else ''}"


def auto_slots(cores: int, mem_available_mib: int, machine: Machine) -> int:
    """Guests the host carries at once: a core per vCPU thread (multi-threaded TCG runs each vCPU as a
    host thread; single-threaded TCG runs them all on one), and the guest's memory plus QEMU's own;
    at least one."""
    by_cpu = cores // (1 if machine.tcg_threads == "single" else max(1, machine.cpus))
    by_mem = mem_available_mib // (machine.memory_mib + GUEST_OVERHEAD_MIB)
    return max(1, min(by_cpu, by_mem))


def local_slots(lab: Lab, jobs: Optional[int] = None) -> int:
    """JOBS, else lab.yaml's executor.slots, else as many guests as this host carries."""
    return jobs or lab.slots or auto_slots(**host_resources(), machine=lab.machines[lab.defaults.machine])


def host_resources() -> Dict[str, int]:
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                mem = int(line.split()[1]) // 1024
    return {"cores": os.cpu_count() or 1, "mem_available_mib": mem}


class LocalExecutor(Executor):
    def __init__(self, slots: int, labrunner: Sequence[str] = (sys.executable, "-m", "labrunner.cli")):
        self.slots = slots
        self._labrunner = list(labrunner)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=slots, thread_name_prefix="slot")
        self._procs: Dict[int, subprocess.Popen] = {}  # by id() of the Job under way
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def submit(self, job: Job) -> "concurrent.futures.Future[Dict[str, Any]]":
        return self._pool.submit(self._run, job)

    def _run(self, job: Job) -> Dict[str, Any]:
        if self._stopping.is_set():
            raise RuntimeError("the executor is shutting down")
        job.results.mkdir(parents=True, exist_ok=True)
        proc = process.spawn(job.argv(self._labrunner), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with self._lock:
            self._procs[id(job)] = proc
        try:
            out, err = proc.communicate(timeout=job.timeout)
        except subprocess.TimeoutExpired:
            process.stop(proc)
            out, err = "", f"labrunner run outlived its bound of {job.timeout:.0f} s; stopped"
        finally:
            with self._lock:
                del self._procs[id(job)]
        return read_record(out, err, proc.returncode)

    def stop(self, job: Job) -> None:
        with self._lock:
            proc = self._procs.get(id(job))
        if proc is not None:
            process.stop(proc, grace=60)  # a run stops its QEMU and records itself on SIGTERM

    def shutdown(self) -> None:
        self._stopping.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            process.stop(proc, grace=60)
        self._pool.shutdown(wait=True, cancel_futures=True)


class InProcess(Executor):
    """One job at a time, run by RUN (runner.run_test) in this process; submit() returns when it has
    ended, and an interruption (Ctrl-C) reaches the caller as it would without an executor."""

    slots = 1

    def __init__(self, lab: Lab, run: Callable[..., Dict[str, Any]], progress: Callable[[str], None]):
        self._lab, self._run, self._progress = lab, run, progress

    def submit(self, job: Job) -> "concurrent.futures.Future[Dict[str, Any]]":
        future: "concurrent.futures.Future[Dict[str, Any]]" = concurrent.futures.Future()
        future.set_result(self._run(self._lab, job.test, kernel=job.kernel, results=job.results,
                                    duration=job.duration, stop_on_first_splat=job.stop_on_first_splat,
                                    kernel_artifacts=job.kernel_artifacts, progress=self._progress))
        return future

    def shutdown(self) -> None:
        pass  # nothing is under way once submit() has returned


def read_record(stdout: str, stderr: str, status: Optional[int]) -> Dict[str, Any]:
    """The run.json of a finished `labrunner run` (it prints "results: DIR"); a record of the failure
    when it made none (a bad kernel name, a crash before its folder existed)."""
    run_dir = next((line[len("results: "):].strip() for line in reversed(stdout.splitlines())
                    if line.startswith("results: ")), None)
    if run_dir and (Path(run_dir) / "run.json").is_file():
        record = json.loads((Path(run_dir) / "run.json").read_text())
        record["run_dir"] = run_dir
        return record
    tail = " ".join(stderr.strip().splitlines()[-3:])[:500]
    return infra_record(f"labrunner run {process.describe_exit(status) if status is not None else 'did not end'}: {tail}")


def infra_record(reason: str) -> Dict[str, Any]:
    """The record of a run that made no folder of its own: an infrastructure error."""
    return {"id": None, "run_dir": None, "verdict": "error", "flags": ["infra"], "splats": [], "reason": reason}
