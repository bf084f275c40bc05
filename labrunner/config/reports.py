"""lab.yaml's `reports:` section: what the nightly's reports need to know of the world outside.

- kcidb.origin: the name KernelCI knows this lab by, [a-z0-9_]+ as KCIDB requires (default labrunner);
- results_url: where the results folder is served, over https; without it the reports link only to
  files beside them, and kcidb.json carries no log_url or output_files (KCIDB wants https URLs).
"""

import dataclasses
import re
from typing import Optional

from .schema import Ctx, mapping, string

ORIGIN = re.compile(r"[a-z0-9_]+")


@dataclasses.dataclass(frozen=True)
class Reports:
    origin: str = "labrunner"
    results_url: Optional[str] = None  # no trailing slash


def _origin(ctx: Ctx) -> str:
    value = string(ctx)
    if not ORIGIN.fullmatch(value):
        raise ctx.error(f"'{value}' is not a KCIDB origin: lower-case letters, digits and _ only")
    return value


def _url(ctx: Ctx) -> str:
    value = string(ctx)
    if not re.fullmatch(r"https://[^\s/]+(/\S*)?", value):
        raise ctx.error(f"'{value}' is not an https:// URL (KCIDB accepts only those)")
    return value.rstrip("/")


def reports(ctx: Ctx) -> Reports:
    f = mapping(ctx, {"kcidb": (lambda c: mapping(c, {"origin": (_origin, Reports.origin)}), None),
                      "results_url": (_url, None)})
    return Reports(origin=(f["kcidb"] or {}).get("origin", Reports.origin), results_url=f["results_url"])
