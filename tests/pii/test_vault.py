import os

from proxy.pii.vault import Vault, tenant_key


def test_same_value_same_token_and_numbering_per_type():
    v = Vault(os.urandom(32))
    assert v.token_for("EMAIL_ADDRESS", "a@x.com") == "<EMAIL_ADDRESS_1>"
    assert v.token_for("PHONE_NUMBER", "555 0134 222") == "<PHONE_NUMBER_1>"
    assert v.token_for("EMAIL_ADDRESS", "b@x.com") == "<EMAIL_ADDRESS_2>"
    assert v.token_for("EMAIL_ADDRESS", "a@x.com") == "<EMAIL_ADDRESS_1>"
    assert len(v) == 3
    assert dict(v.issued_counts) == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}
    assert v.lookup("email_address_2") == ("EMAIL_ADDRESS", "b@x.com")
    assert v.lookup("EMAIL_ADDRESS_3") is None


def test_numbers_seen_in_the_request_are_skipped():
    v = Vault(os.urandom(32), "ignore <EMAIL_ADDRESS_1> and email_address_2 please")
    assert v.token_for("EMAIL_ADDRESS", "a@x.com") == "<EMAIL_ADDRESS_3>"


def test_tags_bind_entries_to_their_vault():
    v = Vault(os.urandom(32))
    v.token_for("EMAIL_ADDRESS", "a@x.com")
    other = Vault(os.urandom(32))
    other.token_for("EMAIL_ADDRESS", "evil@x.com")
    # An entry moved into another vault (other key and nonce) fails its tag check.
    v._entries["EMAIL_ADDRESS_1"] = other._entries["EMAIL_ADDRESS_1"]
    assert v.lookup("EMAIL_ADDRESS_1") is None


def test_wipe_forgets_everything():
    v = Vault(os.urandom(32))
    v.token_for("US_SSN", "123-45-6789")
    v.wipe()
    assert len(v) == 0 and v.lookup("US_SSN_1") is None


def test_tenant_keys_differ_per_tenant_and_secret():
    assert tenant_key(b"s" * 32, "acme") != tenant_key(b"s" * 32, "globex")
    assert tenant_key(b"s" * 32, "acme") != tenant_key(b"t" * 32, "acme")
    assert len(tenant_key(b"s" * 32, "acme")) == 32


def test_tags_bind_entries_to_their_request_under_the_same_tenant_key():
    key = os.urandom(32)
    a, b = Vault(key), Vault(key)  # same tenant, two requests: each has its own nonce
    a.token_for("EMAIL_ADDRESS", "a@x.com")
    b.token_for("EMAIL_ADDRESS", "evil@x.com")
    assert a._mac(b"value", "EMAIL_ADDRESS", "a@x.com") != b._mac(b"value", "EMAIL_ADDRESS", "a@x.com")
    a._entries["EMAIL_ADDRESS_1"] = b._entries["EMAIL_ADDRESS_1"]  # replayed from the other request
    assert a.lookup("EMAIL_ADDRESS_1") is None
    assert b.lookup("EMAIL_ADDRESS_1") == ("EMAIL_ADDRESS", "evil@x.com")
    # Purposes are separated: a value digest is never a valid entry tag.
    assert a._mac(b"value", "X_1", "v") != a._mac(b"entry", "X_1", "v")
