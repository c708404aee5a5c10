from proxy.leak.hit import ACTIONS, DETECTORS, SEVERITY, Hit, LeakBlocked


def test_severity_orders_every_action():
    assert sorted(ACTIONS, key=SEVERITY.__getitem__) == ["off", "redact", "replace", "block"]


def test_blocked_names_the_detector_not_the_text():
    e = LeakBlocked(Hit("secret", "openai_key", 3, 40))
    assert str(e) == "secret:openai_key" and e.hit.end == 40
    assert "secret" in DETECTORS
