"""lab.yaml's sections for nightly runs: `suites:` (kernels x tests x repeats, canaries that must fail
with a given report), `known_issues:` (reports that are never new), `executor:` (guest slots, or a dask cluster),
`retries:` and `notify:`."""

import dataclasses
import re
from typing import Any, Dict, Optional, Tuple

from .schema import REQUIRED, Ctx, integer, kind, mapping, regex_list, str_list, string


@dataclasses.dataclass(frozen=True)
class SuiteEntry:
    """KERNELS x TESTS, REPEATS times each. EXPECT (a title regex) makes every cell a canary: it must
    fail with a matching report, or the lab has lost its power to detect."""
    kernels: Tuple[str, ...]
    tests: Tuple[str, ...]
    repeats: int
    duration: Optional[int]
    expect: Optional[str]


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    entries: Tuple[SuiteEntry, ...]


@dataclasses.dataclass(frozen=True)
class KnownIssue:
    """A report (TITLE, a regex) that is known: marked so, never counted as new. KERNELS and TESTS,
    when given, limit where."""
    title: str
    note: str
    link: Optional[str]  # the bug tracker's or mailing list's page for it
    kernels: Tuple[str, ...]
    tests: Tuple[str, ...]

    def matches(self, title: str, kernel: str, test: str) -> bool:
        return bool(re.search(self.title, title)) and (not self.kernels or kernel in self.kernels) \
            and (not self.tests or test in self.tests)


def _regex(ctx: Ctx) -> str:
    return regex_list(Ctx(ctx.path, ctx.keypath, [string(ctx)], ctx.line))[0]


def _entry(ctx: Ctx) -> SuiteEntry:
    f = mapping(ctx, {
        "kernels": (str_list, REQUIRED),
        "tests": (str_list, REQUIRED),
        "repeats": (integer(1), 1),
        "duration": (integer(1), None),
        "expect": (_regex, None),
    })
    for key in ("kernels", "tests"):
        if not f[key]:
            raise ctx.error("must name at least one", key)
    return SuiteEntry(**f)


def suites(ctx: Ctx) -> Dict[str, Suite]:
    if not isinstance(ctx.node, dict) or not ctx.node:
        raise ctx.error("expected a mapping of named suites")
    out = {}
    for name in ctx.node:
        entries = ctx.child(name)
        if not isinstance(entries.node, list) or not entries.node:
            raise entries.error(f"expected a list of entries (kernels, tests, repeats), got {kind(entries.node)}")
        out[name] = Suite(name, tuple(_entry(entries.item(i)) for i in range(len(entries.node))))
    return out


def known_issues(ctx: Ctx) -> Tuple[KnownIssue, ...]:
    if not isinstance(ctx.node, list):
        raise ctx.error(f"expected a list of known issues, got {kind(ctx.node)}")
    out = []
    for i in range(len(ctx.node)):
        f = mapping(ctx.item(i), {
            "title": (_regex, REQUIRED),
            "note": (string, ""),
            "link": (string, None),
            "kernels": (str_list, ()),
            "tests": (str_list, ()),
        })
        out.append(KnownIssue(**f))
    return tuple(out)


def slots(ctx: Ctx) -> Optional[int]:
    """`auto` (None: derived from the host) or a number of guests at once."""
    if ctx.node == "auto":
        return None
    return integer(1)(ctx)


def executor(ctx: Ctx) -> Dict[str, Any]:
    """Where a nightly's runs go: `kind: local` (this host, SLOTS guests at once) or `kind: dask` (the
    cluster whose scheduler is SCHEDULER, tcp:// or tls://)."""
    f = mapping(ctx, {"kind": (string, "local"), "slots": (slots, None), "scheduler": (string, None)})
    if f["kind"] not in ("local", "dask"):
        raise ctx.error(f"unknown executor kind '{f['kind']}'; known: local, dask", "kind")
    if f["kind"] == "dask" and not re.match(r"(tcp|tls)://\S+:\d+$", f["scheduler"] or ""):
        raise ctx.error("a dask executor needs its scheduler's address, like tcp://HOST:8786", "scheduler")
    if f["kind"] == "local" and f["scheduler"]:
        raise ctx.error("a scheduler is for `kind: dask`", "scheduler")
    return f
