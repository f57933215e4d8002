"""Shared by every scenario: machine facts, results.json, percentiles and the summary table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in ("smsblast", "uvloop", "aiokafka", "smpplib", "pydantic", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions,
        "git_commit": git_commit(),
    }


def scenario_dir(out_dir: str, scenario: str) -> Path:
    """``OUT/<scenario>``, created: where a scenario's results.json and plots go."""
    path = Path(out_dir) / scenario
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_results(
    out_dir: str,
    scenario: str,
    data: dict[str, Any],
    args: argparse.Namespace | None = None,
    plots: Sequence[str] = (),
) -> Path:
    """Write ``OUT/<scenario>/results.json``: ``data`` with machine info and versions, the
    command-line arguments and the names of the plots next to it; return its path."""
    target = scenario_dir(out_dir, scenario) / "results.json"
    document = {
        "scenario": scenario,
        "machine": machine_info(),
        "args": None if args is None else vars(args),
        "plots": list(plots),
        **data,
    }
    target.write_text(json.dumps(document, indent=2, sort_keys=True))
    print(f"results: {target}")
    return target


def read_results(out_dir: str, scenario: str) -> dict[str, Any] | None:
    """A scenario's results.json under ``out_dir``, or None when there is none."""
    target = Path(out_dir) / scenario / "results.json"
    if not target.exists():
        return None
    data: dict[str, Any] = json.loads(target.read_text())
    return data


def percentiles(samples: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max of ``samples`` (nearest rank), None for each when there are none."""
    keys = ("p50", "p90", "p99", "max")
    if not samples:
        return dict.fromkeys(keys)
    ordered = sorted(samples)
    last = len(ordered) - 1

    def rank(q: float) -> float:
        return round(ordered[min(last, int(q * len(ordered)))], 4)

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": round(ordered[-1], 4)}


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table of ``rows`` (numbers with thousands separators)."""

    def cell(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return str(value)
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.3g}"
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
