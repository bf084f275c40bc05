"""`labrunner worker`: a lab host in a dask.distributed cluster, and the one function it runs.

A worker declares `guest=N` resources (N from the same slot budget as the local executor), so a run,
which asks for one, never oversubscribes its host. It runs from the host's own checkout and lab.yaml:
run_task() is labrunner's, imported here by name, and the task it gets is data (a test, a kernel name,
a duration), never code. The task refuses to run when the client's lab.yaml differs from the worker's.

run_task():
- marks the run started in the scheduler's metadata; finding the mark already there means the worker
  that took it first died mid-run, and the task reports an infrastructure error at once, so the nightly
  counts the retry (dask would otherwise re-run it silently);
- installs the run's kernel into this host's cache the first time (build.shipment, fetched from the
  cluster by its digest), runs `labrunner run` in its own process group through a LocalExecutor, and
  stops it when the client asks (a stopped nightly);
- sends back the run's record and its folder, whole, as a gzipped tar, and keeps no copy.
A SIGKILLed worker takes its runs with it: every child has the parent-death signal (labrunner.process).
"""

import asyncio
import concurrent.futures
import io
import logging
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from distributed import Worker, WorkerPlugin

from .. import process
from ..build import image as image_mod
from ..build import shipment
from .. import config
from ..config import Lab
from ..errors import InfraError, LabError
from ..machine import qemu as qemu_mod
from .executor import Job, LocalExecutor, infra_record, local_slots

log = logging.getLogger(__name__)

PLUGIN = "labrunner-host"
MIN_QEMU = (10, 0)  # hot-(un)plug of vCPUs under TCG as the lab uses it (LAB-NOTES)
POLL_S = 5  # how often a run under way asks whether the client wants it stopped
FETCH_TIMEOUT = 900  # a kernel's archive, worker to worker
DEATH_TIMEOUT = 60  # a worker gives up on an unreachable scheduler after this long


def metadata_key(session: str, *rest: str) -> List[str]:
    return ["labrunner", session, *rest]


def check_host(lab: Lab, progress: Callable[[str], None] = lambda s: None) -> List[str]:
    """Why this host cannot run the lab's guests (empty: it can): QEMU and its version, an accelerator,
    the tools the guest image is built with (the image is built here, then cached)."""
    problems = []
    binary = shutil.which(lab.qemu.binary)
    if binary is None:
        return [f"QEMU ({lab.qemu.binary}) is not installed (scripts/setup-host.sh installs it)"]
    version = qemu_mod.version(binary)
    numbers = tuple(int(n) for n in version.split(".")[:2] if n.isdigit())
    if numbers < MIN_QEMU:
        problems.append(f"QEMU {version} is older than {'.'.join(map(str, MIN_QEMU))}, which vCPU hot-unplug needs")
    accels = process.run([binary, "-accel", "help"], timeout=30, what="qemu -accel help")
    if "tcg" not in accels.split() and qemu_mod.kvm_device_state() != "ok":
        problems.append(f"QEMU offers neither TCG nor a usable /dev/kvm: {accels.strip()}")
    try:
        progress("building the guest image")
        image_mod.build_base(lab, lab.images[lab.defaults.image], lab.cache_dir, progress)
    except LabError as e:
        problems.append(f"the guest image does not build here: {e}")
    return problems


class LabHost(WorkerPlugin):
    """What a worker knows of its host (a dask worker plugin): its lab, its cache, its work folder, and
    a LocalExecutor with the host's guest slots."""
    name = PLUGIN

    def __init__(self, lab: Lab, lab_hash: str, slots: int, work: Path, progress: Callable[[str], None]):
        self.lab, self.lab_hash, self.work, self.progress = lab, lab_hash, work, progress
        self.executor = LocalExecutor(slots)

    def setup(self, worker) -> None:
        self.work.mkdir(parents=True, exist_ok=True)

    def teardown(self, worker) -> None:
        self.executor.shutdown()

    def kernel(self, ship: Dict[str, str], client) -> Path:
        """The run's kernel in this host's cache, fetched from the cluster the first time."""
        cache = self.lab.cache_dir
        found = shipment.installed(cache, ship["name"], ship["digest"])
        if found is not None:
            return found
        dataset = client.get_dataset(ship["dataset"], default=None)
        if dataset is None:
            raise InfraError(f"kernel {ship['name']}: the client no longer offers its archive")
        log.info("fetching kernel %s (%s) from the cluster", ship["name"], ship["digest"])
        return shipment.install(cache, ship["name"], ship["digest"], dataset.result(timeout=FETCH_TIMEOUT))


def error_result(reason: str, worker: Optional[str] = None) -> Dict[str, Any]:
    """run_task's answer for a run that made no folder."""
    return {"record": infra_record(reason), "folder": None, "worker": worker}


def pack_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        tar.add(folder, ".")
    return buf.getvalue()


def run_task(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One run of a nightly, on this worker: {record, folder (a gzipped tar of the run folder), worker}."""
    from distributed import get_client, get_worker

    t0 = time.time()
    worker = get_worker()
    host: LabHost = worker.plugins[PLUGIN]
    client = get_client()
    started = metadata_key(spec["session"], "started", spec["key"])
    earlier = client.get_metadata(started, default=None)
    if earlier is not None:
        return error_result(f"the dask worker running it ({earlier}) died mid-run", worker.address)
    client.set_metadata(started, worker.address)
    if spec["lab_hash"] != host.lab_hash:
        return error_result(f"worker {worker.address} has another lab.yaml ({host.lab.path}, hash {host.lab_hash}, "
                      f"the client's {spec['lab_hash']}): run workers from the same checkout", worker.address)
    try:
        t_fetch = time.time()
        kernel_dir = host.kernel(spec["ship"], client)
        fetch_s = time.time() - t_fetch
    except (LabError, OSError, TimeoutError) as e:
        return error_result(f"kernel {spec['kernel']} did not reach worker {worker.address}: {e}", worker.address)
    results = host.work / spec["key"]
    job = Job(lab=host.lab.path, test=spec["test"], kernel=spec["kernel"], results=results,
              duration=spec["duration"], stop_on_first_splat=spec["stop_on_first_splat"], timeout=spec["timeout"],
              kernel_artifacts=kernel_dir)
    host.progress(f"run {spec['test']} on {spec['kernel']} ({spec['key']})")
    t_run = time.time()
    try:
        future = host.executor.submit(job)
        stop = metadata_key(spec["session"], "stop")
        while True:
            try:
                record = future.result(timeout=POLL_S)
                break
            except concurrent.futures.TimeoutError:
                if client.get_metadata(stop, default=False):
                    host.executor.stop(job)
        t_end = time.time()
        host.progress(f"{record['verdict'].upper()}: {spec['test']} on {spec['kernel']}: {record['reason']}")
        folder = pack_folder(Path(record["run_dir"])) if record.get("run_dir") else None
        # What the executor adds to the run, on this host's clock (the kernel's first fetch apart).
        times = {"fetch_s": fetch_s, "before_s": t_run - t0 - fetch_s, "packed_at": time.time(),
                 "after_s": time.time() - t_end}
        return {"record": record, "folder": folder, "worker": worker.address, "times": times}
    finally:
        shutil.rmtree(results, ignore_errors=True)


class LabWorker(Worker):
    """A dask Worker that is a lab host: the host checked, `guest` resources and one thread per slot,
    the LabHost plugin. `labrunner worker` starts one; so can dask's own deployments, given
    worker_class="labrunner.lab.worker.LabWorker" and worker_options={"lab": PATH} (SSHCluster)."""

    def __init__(self, *args, lab: Optional[str] = None, slots: Optional[int] = None,
                 progress: Callable[[str], None] = lambda s: None, **kwargs):
        lab_cfg = config.load(Path(lab) if lab else config.find_lab())
        problems = check_host(lab_cfg, progress)
        if problems:
            raise InfraError("this host cannot run the lab's guests, so it does not join:\n  " + "\n  ".join(problems))
        n = local_slots(lab_cfg, slots)
        self.lab_host = LabHost(lab_cfg, lab_cfg.file_hash(), n,
                                lab_cfg.cache_dir / "worker" / (kwargs.get("name") or "worker"), progress)
        kwargs.setdefault("local_directory", str(self.lab_host.work / "dask"))
        kwargs.setdefault("death_timeout", DEATH_TIMEOUT)
        super().__init__(*args, nthreads=n, resources={"guest": n}, plugins=(self.lab_host,), **kwargs)


def serve(scheduler: str, lab: Optional[Path], *, slots: Optional[int] = None, name: Optional[str] = None,
          listen: Optional[str] = None, progress: Callable[[str], None] = lambda s: None) -> None:
    """Run a LabWorker for SCHEDULER until the scheduler goes away or a signal ends it; every run under
    way is stopped on the way out."""
    workers: List[LabWorker] = []

    async def main() -> None:
        kwargs = {"host": listen} if listen else {}
        async with LabWorker(scheduler, lab=str(lab) if lab else None, slots=slots, progress=progress, name=name,
                             **kwargs) as worker:
            workers.append(worker)
            progress(f"worker {worker.address}: {worker.lab_host.executor.slots} guest slots, scheduler {scheduler}")
            await worker.finished()

    t0 = time.monotonic()
    try:
        asyncio.run(main())
    finally:
        for worker in workers:
            worker.lab_host.executor.shutdown()
        log.info("worker ran for %.0f s", time.monotonic() - t0)
