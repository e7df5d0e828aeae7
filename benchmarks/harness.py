"""The one harness every measurement uses: rows, taking turns for the best time, the table."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    name: str
    ours: str
    reference: str
    ratio: float  # nan: nothing to compare (a failed or skipped measurement)
    target: float | None  # None: measured for information, the issue sets no target
    note: str = ""

    @property
    def met(self) -> bool:
        return self.target is None or self.ratio >= self.target

    @property
    def verdict(self) -> str:
        return "-" if self.target is None else "met" if self.met else "NOT MET"

    @property
    def ratio_text(self) -> str:
        return "-" if math.isnan(self.ratio) else f"{self.ratio:.2f}x"


class Rows(list):
    """The table so far; each row is printed as soon as it is measured."""

    def append(self, row: Row) -> None:
        super().append(row)
        print(
            f"bench: {row.name}: {row.ratio_text} ({row.verdict}): ours {row.ours}, reference {row.reference}",
            flush=True,
        )

    def __iadd__(self, rows):
        for row in rows:
            self.append(row)
        return self


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} img/s"


def speed_row(name: str, count: int, seconds: dict[str, float], reference: str, what: str, target: float, note: str):
    """The stage's images per second against the `reference` contender's (described by `what`), on the
    same `count` images; `seconds`: each contender's best time, the stage's under "stage"."""
    ratio = seconds[reference] / seconds["stage"]
    return Row(name, rate(count, seconds["stage"]), f"{rate(count, seconds[reference])} ({what})", ratio, target, note)


def taking_turns(rounds: int, contenders: dict[str, Callable[[], dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{contender: {measurement: fastest seconds}}: each contender, called once per round in turn,
    reports its own timings; this machine's slower and faster moments (a shared VM: +-15%) fall on
    all of them. A measurement a contender never reported is missing from its dict."""
    best: dict[str, dict[str, float]] = {name: {} for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            for measurement, seconds in run().items():
                best[name][measurement] = min(best[name].get(measurement, math.inf), seconds)
    return best


def best_of(rounds: int, contenders: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Each contender's fastest time in seconds, the contenders taking turns."""

    def timed(run):
        def timing() -> dict[str, float]:
            started = time.perf_counter()
            run()
            return {"run": time.perf_counter() - started}

        return timing

    best = taking_turns(rounds, {name: timed(run) for name, run in contenders.items()})
    return {name: times["run"] for name, times in best.items()}


def print_table(rows: list[Row], source: str, base_name: str | None) -> None:
    base = f"; base: {base_name}" if base_name else ""  # the backend rows name theirs in a note
    print(f"\nBenchmark on {os.cpu_count()} cores; {source}{base}\n")
    print("| measure | ours | reference | ratio | target | |")
    print("|---|---|---|---:|---:|---|")
    for row in rows:
        target = "-" if row.target is None else f">= {row.target}x"
        print(f"| {row.name} | {row.ours} | {row.reference} | {row.ratio_text} | {target} | {row.verdict} |")
    print()
    for row in rows:
        if row.note:
            print(f"- {row.name}: {row.note}")
