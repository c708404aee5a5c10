from proxy.leak.identifier import IdentifierIndex, foreign_hits

INDEX = IdentifierIndex({
    "acme": ("acme", "ACME-ACCT-0001", "acme.com", "shared-partner"),
    "globex": ("globex", "GLOBEX-ACCT-7777", "shared-partner"),
    "initech": ("initech",),
})


def found(tenant: str, text: str) -> list[str]:
    return [text[h.start:h.end] for h in foreign_hits(INDEX, tenant, text)]


def test_other_tenants_identifiers_are_hits():
    assert found("acme", "Your account GLOBEX-ACCT-7777 at Globex") == ["GLOBEX-ACCT-7777", "Globex"]


def test_own_and_shared_identifiers_are_not():
    assert found("acme", "Acme account ACME-ACCT-0001 via shared-partner, mail@acme.com") == []
    assert found("globex", "mail@acme.com") == ["acme.com"]


def test_no_other_tenant_means_no_detector():
    assert IdentifierIndex({"solo": ("solo-1",)}).detector_for("solo") is None
    assert IdentifierIndex({}).detector_for("x") is None


def test_partial_identifier_at_the_end_is_held():
    det = IdentifierIndex({"acme": (), "globex": ("GLOBEX-ACCT-7777",)}).detector_for("acme")
    text = "see GLOBEX-AC"
    hits, hold = det.scan(text, 0, final=False)
    assert hits == [] and hold == 4
    # complete literal at the very end: a longer word may follow, so it waits
    assert det.scan("see GLOBEX-ACCT-7777", 0, final=False) == ([], 4)
    assert [h.kind for h in det.scan("see GLOBEX-ACCT-7777", 0, final=True)[0]] == ["cross_tenant"]
    assert det.scan("see GLOBEX-ACCT-77770", 0, final=True) == ([], 21)
