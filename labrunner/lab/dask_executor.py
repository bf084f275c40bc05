"""The dask executor: a nightly's runs on the lab hosts of a dask.distributed cluster.

Behind the same interface as the local executor; nothing about a run changes. Each Job becomes one
task of labrunner.lab.worker.run_task that asks for one `guest` resource. The client:
- ships each kernel once per nightly: resolved here (fetched or built), packed by build.shipment and
  scattered into the cluster, published under its digest; a worker fetches it only when its own cache
  lacks that digest;
- lands each finished run's folder, whole, in the nightly's runs/ folder, so the index, the reports
  and the comparison cannot tell the run came from elsewhere;
- bounds every wait: the connection, a task's queueing while no worker offers a guest slot, a run
  once it started (the Job's own bound), the scheduler's absence (then InfraError ends the nightly,
  incomplete, for --resume);
- on shutdown asks every run under way to stop (the worker stops it as Ctrl-C would), then lets go.
"""

import concurrent.futures
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..build import kernel as kernel_mod
from ..build import shipment
from ..config import Lab
from ..errors import InfraError
from ..run.record import fresh_dir, write_json_atomic
from . import worker as worker_mod
from .executor import Executor, Job

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30
QUEUE_BOUND = 900  # a task may wait this long with no worker offering a guest slot at all
SCHEDULER_GONE = 60  # the client may be disconnected this long before the nightly ends
POLL_S = 5


class DaskExecutor(Executor):
    def __init__(self, lab: Lab, address: str, *, queue_bound: float = QUEUE_BOUND):
        from distributed import Client

        self.lab, self.lab_hash, self.address, self.queue_bound = lab, lab.file_hash(), address, queue_bound
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise InfraError(f"cannot reach the dask scheduler at {address} within {CONNECT_TIMEOUT} s: {e}") from None
        self.session = uuid.uuid4().hex[:12]
        self.slots = self.guest_slots()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=256, thread_name_prefix="dask-job")
        self._lock = threading.Lock()
        self._ship_lock = threading.Lock()  # held while an archive is packed and sent, for seconds
        self._ships: Dict[str, Tuple[Dict[str, str], Any]] = {}  # kernel name -> (ship, scattered future)
        self._tasks: Dict[str, Any] = {}  # task key -> dask future, under way
        self._stopping = threading.Event()
        self._snapshot: Tuple[Dict[str, str], int] = ({}, self.slots)
        self._asked_at = 0.0

    def guest_slots(self) -> int:
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        return int(sum(w.get("resources", {}).get("guest", 0) for w in workers))

    def describe(self) -> str:
        return f"dask {self.address}, {self.guest_slots()} guest slots"

    def submit(self, job: Job) -> "concurrent.futures.Future[Dict[str, Any]]":
        return self._pool.submit(self._run, job)

    def _ship(self, kernel: str) -> Dict[str, str]:
        """KERNEL's archive in the cluster, scattered once (again if the worker holding it died)."""
        with self._ship_lock:
            if kernel in self._ships and self._ships[kernel][1].status == "finished":
                return self._ships[kernel][0]
            artifacts = kernel_mod.resolve(self.lab.kernels[kernel], self.lab.cache_dir)
            digest, data = shipment.pack(artifacts)
            t0 = time.monotonic()
            try:
                future = self.client.scatter(data, hash=False, timeout=self.queue_bound)
            except TimeoutError:
                raise InfraError(f"no dask worker joined {self.address} within {self.queue_bound:.0f} s") from None
            ship = {"name": kernel, "digest": digest, "dataset": f"labrunner-kernel-{kernel}-{digest}-{self.session}"}
            self.client.publish_dataset(future, name=ship["dataset"], override=True)
            log.info("kernel %s: %.1f MB shipped into the cluster in %.1f s", kernel, len(data) / 1e6,
                     time.monotonic() - t0)
            self._ships[kernel] = (ship, future)
            return ship

    def _run(self, job: Job) -> Dict[str, Any]:
        if self._stopping.is_set():
            raise RuntimeError("the executor is shutting down")
        key = f"labrunner-run-{uuid.uuid4().hex[:16]}"
        spec = {"key": key, "session": self.session, "lab_hash": self.lab_hash, "test": job.test,
                "kernel": job.kernel, "duration": job.duration, "stop_on_first_splat": job.stop_on_first_splat,
                "timeout": job.timeout, "ship": self._ship(job.kernel)}
        future = self.client.submit(worker_mod.run_task, spec, key=key, resources={"guest": 1}, pure=False)
        with self._lock:
            self._tasks[key] = future
        try:
            result = self._wait(future, key, job.timeout)
        finally:
            with self._lock:
                self._tasks.pop(key, None)
        record = land(result, job.results)
        times = result.get("times")
        if times:  # the trip back crosses hosts' clocks: exact on one host, as in bench/cluster.py
            overhead = times["before_s"] + times["after_s"] + time.time() - times["packed_at"]
            record["executor"] = {"worker": result["worker"], "kernel_fetch_s": round(times["fetch_s"], 3),
                                  "overhead_s": round(overhead, 3), "bytes": len(result["folder"] or b"")}
        return record

    def _cluster(self) -> Tuple[Dict[str, str], int]:
        """The runs started (task key -> worker) and the guest slots offered, asked of the scheduler at
        most every POLL_S by all waiting threads together: a nightly of thousands of runs costs the
        scheduler two requests per POLL_S, not thousands."""
        with self._lock:
            if time.monotonic() - self._asked_at > POLL_S:
                started = self.client.get_metadata(worker_mod.metadata_key(self.session, "started"), {})
                self._snapshot = (dict(started), self.guest_slots())
                self._asked_at = time.monotonic()
            return self._snapshot

    def _wait(self, future, key: str, bound: float) -> Dict[str, Any]:
        """FUTURE's result, within QUEUE_BOUND of queueing without any guest slot in the cluster and
        BOUND (plus a margin for the folder's trip) once it started."""
        from distributed import wait

        started_at: Optional[float] = None
        no_slots_since: Optional[float] = None
        gone_since: Optional[float] = None
        while True:
            try:
                with self.client.as_current():  # our client is not the process's default one
                    wait(future, timeout=POLL_S)
            except TimeoutError:
                pass
            except concurrent.futures.CancelledError:  # FuturesCancelledError: the scheduler is gone
                if self._stopping.is_set():
                    raise
                raise InfraError(f"lost the connection to the dask scheduler at {self.address}") from None
            if future.status == "finished":
                return future.result()
            if future.status == "error":
                e = future.exception()
                return worker_mod.error_result(f"the dask task failed: {type(e).__name__}: {e}")
            now = time.monotonic()
            if self.client.status != "running" or future.status in ("lost", "cancelled"):
                gone_since = gone_since or now
                if now - gone_since > SCHEDULER_GONE:
                    raise InfraError(f"lost the dask scheduler at {self.address} for {SCHEDULER_GONE} s")
                continue
            gone_since = None
            if started_at is None:
                started, slots = self._cluster()
                if key in started:
                    started_at = now
                elif slots == 0:
                    no_slots_since = no_slots_since or now
                    if now - no_slots_since > self.queue_bound:
                        raise InfraError(f"no labrunner worker offered a guest slot at {self.address} for "
                                         f"{self.queue_bound:.0f} s")
                else:
                    no_slots_since = None
            elif now - started_at > bound + 120:
                self.client.cancel(future)
                return worker_mod.error_result(f"the run on the cluster outlived its bound of {bound:.0f} s; cancelled")

    def shutdown(self) -> None:
        self._stopping.set()
        with self._lock:
            tasks = list(self._tasks.values())
        try:
            if tasks and self.client.status == "running":
                self.client.set_metadata(worker_mod.metadata_key(self.session, "stop"), True)
                # Each run stops as on Ctrl-C (its QEMU first) within its 60 s grace; then let go.
                from distributed import wait
                try:
                    with self.client.as_current():
                        wait(tasks, timeout=90)
                except TimeoutError:
                    pass
                self.client.cancel(tasks)
            for ship, _ in self._ships.values():
                if self.client.status == "running":
                    self.client.unpublish_dataset(ship["dataset"])
        except (OSError, TimeoutError) as e:
            log.warning("the dask scheduler did not answer while stopping: %s", e)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self.client.close(timeout=10)


def land(result: Dict[str, Any], results: Path) -> Dict[str, Any]:
    """The run's folder unpacked under RESULTS (its name, or name-N if taken); its record."""
    record = result["record"]
    if not result.get("folder"):
        return record
    folder = fresh_dir(results, record["id"])
    shipment.unpack_archive(result["folder"], folder, f"the run folder from {result.get('worker')}")
    record = json.loads((folder / "run.json").read_text())
    if record["id"] != folder.name:  # two hosts made a run folder of the same name
        record["id"] = folder.name
        write_json_atomic(folder / "run.json", record)
    record["run_dir"] = str(folder)
    return record
