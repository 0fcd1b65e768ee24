"""Run every benchmark, then write ``docs/benchmarks.md`` and its chart.

Each benchmark runs as its own subprocess with its own private redis-server
and writes ``benchmarks/results/<name>.json``; this script gathers them into
one page: the goals at a glance, a chart of the ratios against the goals,
the machine and the versions, and every benchmark's table.

Usage: ``python benchmarks/run_all.py`` (``--quick`` for a smoke run with
fewer rounds, ``--only hit batch`` to run some, ``--no-run`` to rebuild the
page from existing results).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"

# Script, its full-run arguments, its --quick arguments.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "hit": ("bench_hit.py", [], ["--rounds", "3", "--per-round", "100"]),
    "batch": ("bench_batch.py", [], ["--rounds", "2", "--per-round", "1"]),
    "stampede": ("bench_stampede.py", [], ["--rounds", "1"]),
    "revocation": ("bench_revocation.py", [], ["--revocations", "20"]),
    "framework": ("bench_framework.py", [], ["--rounds", "2"]),
    "memory": ("bench_memory.py", [], ["--entries", "10000"]),
}


def run_benchmarks(names: list[str], quick: bool) -> dict[str, str]:
    """Run the named benchmarks one after another; return each one's outcome."""
    outcomes: dict[str, str] = {}
    for name in names:
        script, full, smoke = BENCHMARKS[name]
        (RESULTS / f"{name}.json").unlink(missing_ok=True)
        started = time.monotonic()
        command = [sys.executable, str(HERE / script), *(smoke if quick else full)]
        completed = subprocess.run(command, cwd=HERE, check=False, timeout=600)
        seconds = time.monotonic() - started
        if completed.returncode == 0:
            outcomes[name] = f"ok in {seconds:.0f} s"
        else:
            outcomes[name] = f"failed (exit {completed.returncode})"
        print(f"-- {name}: {outcomes[name]}", flush=True)
    return outcomes


def load_results() -> list[dict[str, Any]]:
    """Return every result file, in the order of :data:`BENCHMARKS`."""
    found = []
    for name in BENCHMARKS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            found.append(json.loads(path.read_text()))
    return found


def number(value: float | None, unit: str = "") -> str:
    """Format a measurement with three significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:.3g}{unit}"


def verdict(met: bool | None) -> str:
    """Return the table cell for a goal's outcome."""
    if met is None:
        return ""
    return "yes" if met else "**no**"


def goals_table(results: list[dict[str, Any]]) -> list[str]:
    """Return the markdown table of every goal."""
    lines = ["| goal | measured | target | met? |", "|---|---|---|---|"]
    for result in results:
        for goal in result["goals"]:
            lines.append(
                f"| {goal['name']} | {number(goal['measured'], goal['unit'])} "
                f"| {goal['text']} | {verdict(goal['met'])} |"
            )
    return lines


def result_section(result: dict[str, Any]) -> list[str]:
    """Return the markdown section of one benchmark."""
    lines = [f"## {result['title']}", "", *description(result["benchmark"]), ""]
    lines += [
        "| contender | median | p99 | ratio | anchor | goal | met? | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        unit = f" {row['unit']}"
        ratio = f"{number(row['ratio'])}x" if row["ratio"] is not None else ""
        lines.append(
            f"| {row['contender']} | {number(row['median'], unit)} "
            f"| {number(row['p99'], unit)} | {ratio} | {row['anchor'] or ''} "
            f"| {row['goal'] or ''} | {verdict(row['met'])} | {row['note']} |"
        )
    lines.append("")
    for note in result["notes"]:
        lines.append(f"- {note}")
    params = ", ".join(f"{key}={value}" for key, value in result["params"].items())
    lines += [f"- Parameters: {params}.", ""]
    return lines


def description(name: str) -> list[str]:
    """Return the body of a benchmark script's docstring, its first line left out."""
    script = HERE / BENCHMARKS[name][0]
    docstring = ast.get_docstring(ast.parse(script.read_text())) or ""
    return docstring.split("\n\n", 1)[-1].splitlines()


def machine_section(results: list[dict[str, Any]]) -> list[str]:
    """Return the machine and versions, as measured by the first result."""
    machine = results[0]["machine"]
    lines = [
        "## Machine and versions",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores",
        f"- Platform: {machine['platform']}",
        "",
        "| component | version |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in machine["versions"].items()]
    return [*lines, ""]


def write_doc(results: list[dict[str, Any]], outcomes: dict[str, str]) -> None:
    """Write ``docs/benchmarks.md``."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "Every number here was measured side by side in one run on one machine, "
        f"on {when}, by `python benchmarks/run_all.py` (`make bench`), which "
        "rewrites this page. Each benchmark starts its own private "
        "`redis-server` on loopback. Contenders run in one process, "
        "round-robin: every round gives each a block of operations in a "
        "rotated order, so that the noise of a shared machine falls on all "
        "alike. Medians and p99s are over every sample after a warm-up "
        "round; a ratio is the median, over rounds, of the contender's median "
        "divided by the anchor's median in the same round, which cancels the "
        "slow drifts both saw. Read the ratios, not the absolute times: the "
        "machine has two noisy cores. The goals are those of section 7 of "
        "the design.",
        "",
        "## Goals at a glance",
        "",
        *goals_table(results),
        "",
        f"![Ratios against the goals]({CHART.name})",
        "",
        "Highlighted bars are this library; the dashed line is the goal.",
        "",
    ]
    failed = {name: text for name, text in outcomes.items() if "failed" in text}
    if failed:
        lines += [f"- Not measured in this run: {', '.join(failed)}.", ""]

    for result in results:
        lines += result_section(result)
    lines += machine_section(results)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {DOC}")


def write_chart(results: list[dict[str, Any]]) -> None:
    """Draw every result's panels into ``docs/benchmarks.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [chart for result in results for chart in result["charts"]]
    if not panels:
        return
    columns = 3
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(6 * columns, 4.2 * rows), squeeze=False
    )
    for axis, panel in zip(axes.flat, panels, strict=False):
        draw_panel(axis, panel)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(CHART, dpi=90)
    plt.close(figure)
    print(f"wrote {CHART}")


def draw_panel(axis: Any, panel: dict[str, Any]) -> None:
    """Draw one panel: a horizontal bar per contender and the goal line."""
    names = list(panel["bars"])
    values = [panel["bars"][name] for name in names]
    colours = ["#1f77b4" if name in panel["ours"] else "#b0b0b0" for name in names]
    positions = range(len(names))
    axis.barh(positions, values, color=colours)
    axis.set_yticks(list(positions), [wrap(name) for name in names], fontsize=8)
    axis.invert_yaxis()
    axis.set_title(panel["title"], fontsize=10)
    axis.set_xlabel(panel["ylabel"], fontsize=8)
    for position, value in zip(positions, values, strict=True):
        label = f" {value:,.0f}" if value >= 1000 else f" {value:.3g}"
        axis.text(value, position, label, va="center", fontsize=8)
    if panel["goal"] is not None:
        axis.axvline(panel["goal"], color="#d62728", linestyle="--", linewidth=1.2)
    top = max([*values, panel["goal"] or 0]) or 1
    if panel.get("log"):
        axis.set_xscale("log")
        axis.set_xlim(0.5, top * 3)
    else:
        axis.set_xlim(0, top * 1.25)


def wrap(name: str, width: int = 28) -> str:
    """Break a long contender name onto two lines."""
    if len(name) <= width:
        return name
    cut = name.rfind(" ", 0, width)
    cut = cut if cut > 0 else width
    return name[:cut] + "\n" + name[cut:].strip()


def main() -> None:
    """Parse options, run the benchmarks, and write the page and chart."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS))
    parser.add_argument("--no-run", action="store_true", help="only rebuild docs")
    options = parser.parse_args()

    started = time.monotonic()
    outcomes: dict[str, str] = {}
    if not options.no_run:
        RESULTS.mkdir(exist_ok=True)
        outcomes = run_benchmarks(options.only or list(BENCHMARKS), options.quick)

    results = load_results()
    if not results:
        sys.exit("no results to report")
    write_chart(results)
    write_doc(results, outcomes)
    print(f"all done in {time.monotonic() - started:.0f} s")
    if any("failed" in text for text in outcomes.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
