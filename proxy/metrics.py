"""Every Prometheus metric, defined once. The registry is injectable (tests get their own).

Labels are bounded: route, status, stage, decision, provider and entity/detector
names come from the policy or the code, never from the client. A tenant label is
added only when the policy turns `metrics.tenant_label` on.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from proxy.loopmon import BUCKETS as LOOP_LAG_BUCKETS

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_FAST = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class _Children:
    """labels() with its children memoized by the label values: prometheus_client takes a lock and
    re-validates on every call, and the handler calls it several times per request."""

    def labels(self, *values, **kw):
        if kw:
            return super().labels(*values, **kw)
        memo = self.__dict__.setdefault("_children", {})
        child = memo.get(values)
        if child is None:
            child = memo[values] = super().labels(*values)
        return child


class _Counter(_Children, Counter):
    pass


class _Histogram(_Children, Histogram):
    pass


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, tenant_label: bool = False) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.tenant_label = tenant_label
        r = self.registry
        t = ("tenant",) if tenant_label else ()
        self.requests = _Counter("ramparts_requests_total", "Requests by route and status", ("route", "status") + t, registry=r)
        self.duration = _Histogram("ramparts_request_duration_seconds", "Whole request duration", ("route",), buckets=_LATENCY, registry=r)
        self.upstream_ttfb = _Histogram("ramparts_upstream_ttfb_seconds", "Upstream time to first byte", ("provider",), buckets=_LATENCY, registry=r)
        self.overhead = _Histogram("ramparts_proxy_overhead_seconds", "Request time spent in the proxy (total minus upstream)", ("route",), buckets=_FAST + (0.25, 0.5, 1.0), registry=r)
        self.upstream_errors = Counter("ramparts_upstream_errors_total", "Upstream failures by kind", ("provider", "kind"), registry=r)
        self.in_flight_streams = Gauge("ramparts_in_flight_streams", "Streams currently open to clients", registry=r)
        self.memory_pressure = Gauge("ramparts_memory_pressure",
                                     "1 while RSS is above server.max_rss_mib and new requests are shed", registry=r)
        self.loop_lag = Histogram("ramparts_event_loop_lag_seconds",
                                  "How late the event loop woke a task that slept a fixed interval (every 0.1 s)",
                                  buckets=LOOP_LAG_BUCKETS, registry=r)
        self.in_flight = Gauge("ramparts_in_flight_requests", "Requests currently being handled", registry=r)
        self.decisions = Counter("ramparts_stage_decisions_total", "Stage decisions", ("stage", "decision") + t, registry=r)
        self.stage_seconds = Histogram("ramparts_stage_seconds", "Time spent in a stage's detection work", ("stage",), buckets=_FAST, registry=r)
        # engines' own signals
        self.pii_entities = Counter("ramparts_pii_entities_total", "PII entities found, by type and decision", ("entity", "decision"), registry=r)
        self.injection_score = Histogram("ramparts_injection_score", "Prompt-injection score per scored carrier", ("carrier",), buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0), registry=r)
        self.leak_hits = Counter("ramparts_leak_hits_total", "Output leak detector hits", ("detector", "action"), registry=r)
        self.budget_reservations = Counter("ramparts_budget_reservations_total", "Budget reservations by outcome", ("outcome",), registry=r)
        self.budget_store_errors = Counter("ramparts_budget_store_errors_total", "Budget/rate-limit store failures", ("store",), registry=r)
        self.budget_spent_usd = Counter("ramparts_budget_spent_usd_total", "Settled spend in USD", t, registry=r) if t else Counter("ramparts_budget_spent_usd_total", "Settled spend in USD", registry=r)
        self.rate_limited = Counter("ramparts_rate_limited_total", "Requests refused by a rate limit", ("route", "limit"), registry=r)
        self.audit_records = Counter("ramparts_audit_records_total", "Audit records written", registry=r)
        self.audit_queue = Gauge("ramparts_audit_queue_depth", "Audit records waiting for the writer", registry=r)
        self.audit_failures = Counter("ramparts_audit_sink_failures_total", "Audit sink write failures (alarm)", registry=r)
        self.audit_sink_healthy = Gauge("ramparts_audit_sink_healthy", "1 while the audit sink is writable", registry=r)
        self._decision_children: dict[tuple[str, str, str | None], Counter] = {}

    def tenant(self, tenant: str | None) -> tuple[str, ...]:
        """Extra label values for metrics that carry the optional tenant label."""
        return (tenant or "-",) if self.tenant_label else ()

    def decision(self, stage: str, decision: str, tenant: str | None = None) -> None:
        # labels() takes a lock and rebuilds the key on every call; the children are few (bounded labels)
        key = (stage, decision, tenant if self.tenant_label else None)
        child = self._decision_children.get(key)
        if child is None:
            child = self._decision_children[key] = self.decisions.labels(stage, decision, *self.tenant(tenant))
        child.inc()
