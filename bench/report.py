"""What a benchmark measured, in a shape ``python -m bench all`` can tabulate and plot.

Each benchmark module that takes part has ``async def collect(workdir, quick) -> Report``;
its own ``main()`` keeps printing for people, ``collect`` returns numbers for the report.
Pure: building the Markdown table and the plot series needs no I/O (``plot.py`` draws).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Row:
    """One measured figure: ``value`` in ``unit``, with the target and the peer beside it."""

    bench: str
    case: str
    value: float
    unit: str
    target: str = ""  # e.g. "<= 0.5 ms"
    met: bool | None = None  # None: no target
    compare: str = ""  # the same thing measured for a peer or baseline, in words

    def cells(self) -> list[str]:
        verdict = {None: "", True: "met", False: "missed"}[self.met]
        return [
            self.bench,
            self.case,
            f"{format_value(self.value)} {self.unit}",
            f"{self.target} {verdict}".strip(),
            self.compare,
        ]


@dataclass(frozen=True, slots=True)
class Curve:
    """A series for a plot: ``plot`` names the figure it belongs to."""

    plot: str
    label: str
    points: tuple[tuple[float, float], ...]


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # benchmarks that did not finish, and why

    def extend(self, other: Report) -> None:
        self.rows += other.rows
        self.curves += other.curves
        self.failed += other.failed


def check(value: float, *, at_most: float | None = None, at_least: float | None = None) -> bool:
    """Whether ``value`` meets a target given as a bound."""
    if at_most is not None and value > at_most:
        return False
    return at_least is None or value >= at_least


def format_value(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_table(rows: Iterable[Row]) -> str:
    header = ["benchmark", "case", "measured", "target", "compared with"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row.cells()) + " |" for row in rows
    ]
    return "\n".join(lines) + "\n"


def markdown(report: Report, *, title: str, context: Sequence[str] = ()) -> str:
    """The whole report: a title, lines of context (machine, versions), the table."""
    parts = [f"# {title}\n", *(f"- {line}" for line in context), "", markdown_table(report.rows)]
    if report.failed:
        parts += ["Did not finish:\n", *(f"- {reason}" for reason in report.failed), ""]
    return "\n".join(parts)
