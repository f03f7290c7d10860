"""The report's figures: one PNG per kind of curve (matplotlib, drawn without a display)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from bench.report import Curve, Report

# plot name: (title, x label, y label, logarithmic x, logarithmic y)
FIGURES = {
    "batch": (
        "multi_pay_invoice, 200 ms per payment, nostr-relay",
        "invoices in the batch",
        "seconds to the last answer",
        False,
        True,
    ),
    "connections": (
        "get_balance throughput with N connections registered",
        "connections",
        "requests per second",
        True,
        False,
    ),
    "lnbits": (
        "multi_pay_invoice on LNbits",
        "invoices",
        "seconds to the last answer",
        False,
        False,
    ),
    "lnd": (
        "multi_pay_invoice on LND regtest",
        "invoices",
        "seconds to the last answer",
        False,
        False,
    ),
}


def group(curves: list[Curve]) -> dict[str, list[Curve]]:
    figures: dict[str, list[Curve]] = defaultdict(list)
    for curve in curves:
        if curve.points:
            figures[curve.plot].append(curve)
    return dict(figures)


def draw(report: Report, out: Path) -> list[Path]:
    """One ``<plot>.png`` per figure that has data; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, curves in group(report.curves).items():
        title, xlabel, ylabel, log_x, log_y = FIGURES.get(name, (name, "", "", False, False))
        figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for curve in curves:
            xs, ys = zip(*sorted(curve.points), strict=True)
            axes.plot(xs, ys, marker="o", label=curve.label)
        axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
        if log_x:
            axes.set_xscale("log")
        if log_y:
            axes.set_yscale("log")
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = out / f"{name.replace(' ', '-')}.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
