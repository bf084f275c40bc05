"""A run's timeline: what happened when, from the run's own files, as pure functions.

Three sources, on one axis (seconds since the console opened, console.log's "[+ s]" prefix):
- console.log: the guest's online CPUs (boot total, "Booting Node N Processor C", "CPU C is now
  offline"), and the kernel clock of each line, to place reports by their own timestamp;
- qmp.jsonl (host clock): the vCPUs QEMU has (each query-hotpluggable-cpus answer), plug and unplug
  requests, and failed confirmations;
- progress.jsonl (host clock): the workload's counters, such as vm_cycles.
layout() turns a Timeline into shapes in SVG coordinates; the template only draws them.
"""

import bisect
import dataclasses
import json
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

_HOST = re.compile(r"^\[\+\s*(\d+\.\d+)\] ")
_KERNEL = re.compile(r"^\[\s*(\d+\.\d+)\](?:\[\s*[TC]\d+\])? ")  # [ T98]: printk's caller, when the kernel prints it
_TOTAL = re.compile(r"smpboot: Total of (\d+) processors activated|smp: Brought up \d+ nodes?, (\d+) CPUs?")
_ONLINE = re.compile(r"smpboot: Booting Node \d+ Processor (\d+) APIC")
_OFFLINE = re.compile(r"smpboot: CPU (\d+) is now offline")


@dataclasses.dataclass
class Timeline:
    online: List[Tuple[float, int]] = dataclasses.field(default_factory=list)   # guest's online CPUs
    present: List[Tuple[float, int]] = dataclasses.field(default_factory=list)  # QEMU's vCPUs
    events: List[Tuple[float, str, str]] = dataclasses.field(default_factory=list)  # (t, plug|unplug|failed, text)
    progress: Dict[str, List[Tuple[float, int]]] = dataclasses.field(default_factory=dict)
    splats: List[Tuple[float, str]] = dataclasses.field(default_factory=list)  # (t, title)
    end: float = 0.0
    notes: List[str] = dataclasses.field(default_factory=list)  # what is missing or approximate


class ConsoleTimes:
    """Line-fed: the online CPU count as it changes, and (kernel time, host time) pairs."""

    def __init__(self):
        self.cpus: set = set()
        self.online: List[Tuple[float, int]] = []
        self.clock: List[Tuple[float, float]] = []  # (kernel s, host s), kernel time ascending
        self.last = 0.0

    def feed(self, line: str) -> None:
        m = _HOST.match(line)
        if not m:
            return
        host = self.last = float(m.group(1))
        text = line[m.end():]
        k = _KERNEL.search(text)
        if k:
            kernel = float(k.group(1))
            if not self.clock or kernel >= self.clock[-1][0]:
                self.clock.append((kernel, host))
        before = len(self.cpus)
        if (t := _TOTAL.search(text)):
            self.cpus |= set(range(int(t.group(1) or t.group(2))))
        elif (on := _ONLINE.search(text)):
            self.cpus.add(int(on.group(1)))
        elif (off := _OFFLINE.search(text)):
            self.cpus.discard(int(off.group(1)))
        if len(self.cpus) != before:
            self.online.append((host, len(self.cpus)))

    def host_time(self, kernel: float) -> Optional[float]:
        """The console time of kernel time KERNEL, from the nearest earlier line that had both."""
        i = bisect.bisect_right(self.clock, (kernel, float("inf"))) - 1
        if i < 0:
            return None
        k, h = self.clock[i]
        return h + (kernel - k)


def qmp_shapes(records: Iterable[Dict[str, Any]], t0: float) -> Tuple[List[Tuple[float, int]],
                                                                       List[Tuple[float, str, str]]]:
    """(vCPUs present over time, plug/unplug/failed events) from qmp.jsonl's records. The count is
    each query-hotpluggable-cpus answer's, moved by one at each confirmed plug or unplug in between
    (the controller asks QEMU only while it waits for an unplug)."""
    present: List[Tuple[float, int]] = []
    events = []
    for r in records:
        t, msg = r.get("t", t0) - t0, r.get("msg") or {}
        if r.get("dir") == "recv" and isinstance(msg.get("return"), list) and msg["return"] \
                and isinstance(msg["return"][0], dict) and "vcpus-count" in msg["return"][0]:
            present.append((t, sum("qom-path" in c for c in msg["return"])))
        elif r.get("dir") == "send" and msg.get("execute") in ("device_add", "device_del"):
            what = "plug" if msg["execute"] == "device_add" else "unplug"
            events.append((t, what, f"{what} {(msg.get('arguments') or {}).get('id', '?')}"))
        elif r.get("dir") == "lab" and r.get("ok") is False:
            events.append((t, "failed", str(r.get("detail", r.get("action")))))
        elif r.get("dir") == "lab" and r.get("ok") and present:
            step = {"plug-done": 1, "unplug-done": -1}.get(r.get("action", ""), 0)
            if step:
                present.append((t, present[-1][1] + step))
    return present, events


def read_jsonl(text: str) -> List[Dict[str, Any]]:
    """Records of a JSON-lines file; a line cut short by a killed run is skipped."""
    out = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def build(record: Dict[str, Any], console: Optional[str], qmp: Optional[str], progress: Optional[str]) -> Timeline:
    """The timeline of a run from run.json's RECORD and its files' texts (None: missing)."""
    tl = Timeline()
    times = ConsoleTimes()
    for line in (console or "").splitlines():
        times.feed(line)
    if console is None:
        tl.notes.append("console.log is missing: no CPU counts or report times")
    tl.online, tl.end = times.online, times.last
    qmp_records = read_jsonl(qmp) if qmp is not None else []
    t0 = record.get("console_started_at")
    if t0 is None:  # written before labrunner recorded it: QMP connects within a second of the console
        t0 = qmp_records[0]["t"] if qmp_records and "t" in qmp_records[0] else None
        if qmp_records:
            tl.notes.append("host times are approximate (this run did not record when its console opened)")
    if t0 is not None:
        tl.present, tl.events = qmp_shapes(qmp_records, t0)
        for r in read_jsonl(progress or ""):
            for name, value in r.items():
                if name != "t" and isinstance(value, int):
                    tl.progress.setdefault(name, []).append((r.get("t", t0) - t0, value))
    if qmp is None:
        tl.notes.append("qmp.jsonl is missing: no host plug and unplug events")
    if not tl.progress:
        tl.notes.append("the workload reported no progress counters over time")
    for s in record.get("splats") or []:
        t = times.host_time(s["timestamp"]) if s.get("timestamp") is not None else None
        if t is not None:
            tl.splats.append((t, s.get("title", "?")))
    ends = [tl.end, *(p[0] for p in tl.present), *(e[0] for e in tl.events), *(s[0] for s in tl.splats),
            *(p[0] for series in tl.progress.values() for p in series)]
    tl.end = max(ends) if ends else 0.0
    return tl


@dataclasses.dataclass
class Lane:
    label: str
    top: float
    height: float
    points: str = ""  # an SVG polyline's points
    peak: str = ""


def _step(series: List[Tuple[float, int]], x, y, end: float) -> str:
    pts: List[Tuple[float, float]] = []
    for i, (t, v) in enumerate(series):
        if pts:
            pts.append((x(t), pts[-1][1]))
        pts.append((x(t), y(v)))
        if i == len(series) - 1:
            pts.append((x(end), y(v)))
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)


def layout(tl: Timeline, width: int = 960, lane: int = 60) -> Dict[str, Any]:
    """Shapes for the template: lanes with polylines, event ticks, report marks, the time axis."""
    left, right, gap = 110, 10, 14
    span = max(tl.end, 1.0)
    x = lambda t: left + (width - left - right) * max(0.0, t) / span  # noqa: E731
    lanes, top = [], 10.0
    cpu_max = max([v for _, v in tl.online + tl.present] or [1])
    for label, series in (("online CPUs (guest)", tl.online), ("vCPUs (QEMU)", tl.present)):
        ln = Lane(label, top, lane, peak=f"max {max([v for _, v in series] or [0])}")
        ln.points = _step(series, x, lambda v, t=top: t + lane - lane * v / cpu_max, tl.end)
        lanes.append(ln)
        top += lane + gap
    for name, series in sorted(tl.progress.items(), key=lambda item: (item[0] != "vm_cycles", item[0])):
        peak = max([v for _, v in series] or [1]) or 1
        ln = Lane(name.replace("_", " "), top, lane, peak=f"max {peak}")
        ln.points = " ".join(f"{x(t):.1f},{top + lane - lane * v / peak:.1f}" for t, v in series)
        lanes.append(ln)
        top += lane + gap
    events = [{"x": round(x(t), 1), "kind": kind, "text": f"{t:.1f} s: {text}"} for t, kind, text in tl.events]
    splats = [{"x": round(x(t), 1), "text": f"{t:.1f} s: {title}"} for t, title in tl.splats]
    step = next(s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 10 ** 9) if span / s <= 10)
    ticks = [{"x": round(x(t), 1), "label": f"{t:g} s"} for t in range(0, int(span) + 1, step)]
    return {"width": width, "height": top + 24, "left": left, "right": width - right, "axis": top,
            "lanes": lanes, "events": events, "splats": splats, "ticks": ticks, "notes": tl.notes}
