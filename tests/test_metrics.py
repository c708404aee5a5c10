"""Metrics: decisions are counted per (stage, decision[, tenant]) child."""

from proxy.metrics import Metrics


def value(m: Metrics, **labels) -> float:
    return m.registry.get_sample_value("ramparts_stage_decisions_total", labels) or 0.0


def test_decisions_count_per_label_set():
    m = Metrics()
    for _ in range(3):
        m.decision("tenant", "allow", "acme")
    m.decision("egress", "deny", "acme")
    assert value(m, stage="tenant", decision="allow") == 3
    assert value(m, stage="egress", decision="deny") == 1


def test_decisions_with_the_tenant_label():
    m = Metrics(tenant_label=True)
    m.decision("tenant", "allow", "acme")
    m.decision("tenant", "allow", "acme")
    m.decision("tenant", "allow", "globex")
    m.decision("tenant", "deny", None)
    assert value(m, stage="tenant", decision="allow", tenant="acme") == 2
    assert value(m, stage="tenant", decision="allow", tenant="globex") == 1
    assert value(m, stage="tenant", decision="deny", tenant="-") == 1


def test_request_metrics_children_are_reused_and_count():
    m = Metrics(tenant_label=True)
    a = m.requests.labels("chat", "200", "acme")
    assert m.requests.labels("chat", "200", "acme") is a
    a.inc()
    m.requests.labels(route="chat", status="200", tenant="acme").inc()  # keyword form still works
    m.duration.labels("chat").observe(0.01)
    m.duration.labels("chat").observe(0.02)
    assert m.registry.get_sample_value("ramparts_requests_total", {"route": "chat", "status": "200", "tenant": "acme"}) == 2
    assert m.registry.get_sample_value("ramparts_request_duration_seconds_count", {"route": "chat"}) == 2
