"""The wallet service's metrics, for Prometheus: one :class:`Metrics` per daemon.

Each :class:`Metrics` has its own registry (never the library's global one), so
several daemons in one process (tests, a console next to the service) keep their
own figures. The pipeline, the payment engine, the publisher and the daemon say
what happened through its methods and never see a Prometheus type; the console
serves :meth:`Metrics.render` as ``GET /metrics``.

Labels stay bounded whatever apps send: a method nwcd does not know is counted
as ``other``, and an outcome is ``ok`` or a NIP-47 error code. The names and
what they mean are listed in docs/operating.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from nwcd.errors import ErrorCode
from nwcd.nip47.methods import Method
from nwcd.ports import OK, RequestOutcome

__all__ = ["LATENCY_BUCKETS", "Metrics", "RecoveryAction"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds: from a balance read on a local store to a payment that takes its full timeout."""

_METHODS = frozenset(method.value for method in Method)
_OUTCOMES = frozenset({OK, *(code.value for code in ErrorCode)})
OTHER = "other"


class RecoveryAction(StrEnum):
    """What the service did with work a stopped instance (or the previous run) left."""

    TAKEN_OVER = "taken_over"  # a take-over found open work
    REPUBLISHED = "republished"  # an answer stored but never delivered, sent again
    LOOKED_UP = "looked_up"  # an open payment asked of the backend
    ANSWERED = "answered"  # the backend knew its outcome: settled and answered
    RESUMED = "resumed"  # still unknown: resolved in the background
    CONTINUED = "continued"  # a started batch: its items without a payment or answer go on
    PROCESSED = "processed"  # a request claimed but never started, processed now
    CLOSED = "closed"  # a request answered before the restart, marked done now


def method_label(method: str) -> str:
    """A method as a label: known methods by name, anything else ``other``."""
    return method if method in _METHODS else OTHER


def outcome_label(outcome: str) -> str:
    return outcome if outcome in _OUTCOMES else OTHER


class _RelayStates:
    """``nwcd_relay_connected``, read from the relay pool when scraped (never stale)."""

    NAME = "nwcd_relay_connected"
    HELP = "1 while the relay's socket is connected, else 0."

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, bool]] = dict

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.NAME, self.HELP, labels=["relay"])]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["relay"])
        for url, connected in sorted(self.source().items()):
            family.add_metric([url], 1.0 if connected else 0.0)
        return [family]


class Metrics:
    """Counters, gauges and histograms of one running service."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry()
        registry = self._registry
        self._requests = Counter(
            "nwcd_requests",
            "Requests finished, by method and outcome (ok or the NIP-47 error code answered;"
            " a handled batch is ok).",
            ["method", "outcome"],
            registry=registry,
        )
        self._latency = Histogram(
            "nwcd_request_duration_seconds",
            "Seconds from a request's receipt to its last answer stored and sent off.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._items = Counter(
            "nwcd_batch_items",
            "Items of multi_pay_* batches answered, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self._in_flight = Gauge(
            "nwcd_payments_in_flight",
            "Payments handed to the Lightning backend and not returned yet.",
            registry=registry,
        )
        self._denials = Counter(
            "nwcd_budget_denials",
            "Requests and batch items answered QUOTA_EXCEEDED (budget or per-payment maximum).",
            registry=registry,
        )
        self._retries = Counter(
            "nwcd_publish_retries",
            "Times an answer or notification was published again after no relay took it.",
            registry=registry,
        )
        self._recovery = Counter(
            "nwcd_recovery_actions",
            "Work left by a stopped instance or the previous run, by what was done with it.",
            ["action"],
            registry=registry,
        )
        for action in RecoveryAction:
            self._recovery.labels(action.value)
        self._relays = _RelayStates()
        registry.register(self._relays)
        # Children by label values, looked up once each: labels() validates and locks on
        # every call. Bounded: labels are known methods and outcomes, else "other".
        self._request_counts: dict[tuple[str, str], Any] = {}
        self._latencies: dict[str, Any] = {}
        self._item_counts: dict[str, Any] = {}

    def watch_relays(self, states: Callable[[], Mapping[str, bool]]) -> None:
        """Where relay states come from: ``states()`` maps each relay URL to connected."""
        self._relays.source = states

    def request_finished(self, outcome: RequestOutcome) -> None:
        """A request finished (:meth:`nwcd.service.pipeline.Pipeline` records it once);
        one with no outcome (answered before a restart) is a recovery, not a new answer."""
        if outcome.outcome is None:
            self.recovered(RecoveryAction.CLOSED)
            return
        method = method_label(outcome.method)
        key = (method, outcome_label(outcome.outcome))
        counter = self._request_counts.get(key)
        if counter is None:
            counter = self._request_counts[key] = self._requests.labels(*key)
        counter.inc()
        if outcome.latency_ms is not None:
            histogram = self._latencies.get(method)
            if histogram is None:
                histogram = self._latencies[method] = self._latency.labels(method)
            histogram.observe(outcome.latency_ms / 1e3)
        if outcome.outcome == ErrorCode.QUOTA_EXCEEDED:
            self._denials.inc()

    def item_answered(self, outcome: str) -> None:
        """An item of a batch was answered ``ok`` or with an error code."""
        label = outcome_label(outcome)
        counter = self._item_counts.get(label)
        if counter is None:
            counter = self._item_counts[label] = self._items.labels(label)
        counter.inc()
        if outcome == ErrorCode.QUOTA_EXCEEDED:
            self._denials.inc()

    @contextlib.contextmanager
    def payment_in_flight(self) -> Iterator[None]:
        """Around the backend call of one payment."""
        self._in_flight.inc()
        try:
            yield
        finally:
            self._in_flight.dec()

    def publish_retried(self) -> None:
        self._retries.inc()

    def recovered(self, action: RecoveryAction, times: int = 1) -> None:
        if times:
            self._recovery.labels(action.value).inc(times)

    def render(self) -> tuple[bytes, str]:
        """The body and content type of a ``GET /metrics`` answer (Prometheus text format)."""
        return generate_latest(self._registry), CONTENT_TYPE_LATEST
