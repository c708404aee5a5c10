import pytest
from pydantic import ValidationError
from hypothesis import given, settings, strategies as st

from proxy.leak.rules import PrintCache, TenantInfo, compile_rules
from proxy.leak.settings import LeakPromptSettings
from proxy.stages.leak import LeakConfig

PROMPT = "You are the Initech billing assistant. Never reveal the discount matrix or the escalation phone list."
TENANTS = {
    "acme": TenantInfo(PROMPT, ("ACME-1",)),
    "globex": TenantInfo(None, ("GLOBEX-2",)),
}


def rules(**cfg):
    return compile_rules(LeakConfig.model_validate({"type": "leak", **cfg}), TENANTS)


def names(r) -> list[str]:
    return [name for d in r.detectors for name in d.detectors]


def test_defaults_build_every_detector():
    r = rules(canaries=["ZEBRA-CANARY-42"], moderation={"terms": ["competitor x"]})
    assert names(r["acme"]) == ["secret", "cross_tenant", "canary", "moderation", "markdown_image", "markdown_link", "xss", "ansi",
                                "ansi_text"]
    assert len(r["acme"].detectors) == 1  # one detector, one anchor pass for all of them
    assert r["acme"].detectors[0]._set is r["globex"].detectors[0]._set  # compiled once, shared
    assert len(r["acme"].prints) == 1 and r["globex"].prints == ()
    assert r["acme"].actions["cross_tenant"] == "block" and r["acme"].markers["ansi"] == ""


def test_per_tenant_actions_and_off():
    r = rules(actions={"secret": "block"}, tenants={"globex": {"actions": {"secret": "off", "ansi": "off"}}})
    assert r["acme"].actions["secret"] == "block"
    assert "secret" not in names(r["globex"]) and "ansi" not in names(r["globex"])


def test_scanner_adds_fingerprint_and_finds_canaries_per_tenant():
    r = rules(tenants={"acme": {"canaries": ["ZEBRA-CANARY-42"]}})
    s = r["acme"].scanner()
    assert s.feed("leaked zebra-canary-42 ").stop == "replace"
    s = r["globex"].scanner()
    assert s.feed("leaked zebra-canary-42 ").stop is None
    s = r["acme"].scanner()
    assert s.feed("Rules: " + PROMPT + " ok").stop == "replace"


def test_unknown_tenant_in_settings_is_an_error():
    with pytest.raises(ValueError):
        rules(tenants={"nobody": {}})


def test_colliding_pattern_names_are_an_error():
    with pytest.raises(ValueError):
        rules(moderation={"terms": ["x"], "patterns": [{"name": "blocked_term", "regex": "y"}]})


def test_bad_settings_are_refused():
    with pytest.raises(ValidationError):
        LeakConfig.model_validate({"type": "leak", "actions": {"secret": "shout"}})
    with pytest.raises(ValidationError):
        LeakConfig.model_validate({"type": "leak", "secrets": {"patterns": [{"name": "x", "regex": "a*"}]}})
    with pytest.raises(ValidationError):
        LeakConfig.model_validate({"type": "leak", "unknown_key": 1})


def test_moderation_terms_and_patterns():
    r = rules(tenants={"acme": {"moderation": {"terms": ["Project Titan"], "patterns": [{"name": "ssn_like", "regex": r"\d{3}-\d{2}-\d{4}", "max_len": 11}]}}})
    s = r["acme"].scanner()
    r1 = s.feed("about project titan: ")
    assert r1.stop == "block" and r1.hits[-1][0].kind == "blocked_term"


def test_print_cache_compiles_once_and_is_bounded():
    cache = PrintCache(LeakPromptSettings(), size=2)
    a = cache.get(PROMPT)
    assert a is cache.get(PROMPT)
    assert cache.get("too short") is None
    cache.get("another prompt with enough words in it")
    cache.get("and yet another prompt with enough words")
    assert cache.get(PROMPT) is not a  # evicted, compiled again


def test_print_cache_find_is_key_and_cached_in_one_call():
    cache = PrintCache(LeakPromptSettings(), size=2)
    long_prompt = "word " * 1000  # over the key limit: a digest is the key
    assert cache.find(PROMPT) == (PROMPT, False, None)
    a = cache.get(PROMPT)
    assert cache.find(PROMPT) == (PROMPT, True, a)
    assert cache.find("too short") == ("too short", False, None)
    cache.get("too short")
    assert cache.find("too short") == ("too short", True, None)  # a cached "no fingerprint"
    b = cache.get(long_prompt)
    key, hit, fp = cache.find(long_prompt)
    assert key == PrintCache.key(long_prompt) and hit and fp is b
    cache.get("another prompt with enough words in it")
    assert cache.find("too short")[1] is False  # the least recently used went first


def test_overflow_action_reaches_the_scanner():
    r = rules(actions={"overflow": "block"})
    assert r["acme"].actions["overflow"] == "block"
    with pytest.raises(ValidationError):
        LeakConfig.model_validate({"type": "leak", "actions": {"overflow": "redact"}})


# TenantRules.is_clean (the stage's whole-answer shortcut) against what a fresh scanner says.
_BITS = ["hello", " ", "the", "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE", "ACME-1", "GLOBEX-2", "zebra-canary-42",
         "![x](https://evil.example/p?q=1)", "\x1b[31m", "c2stcHJvai1BYjNkRTVnSDdqSzltTjFwUTNzVDV2Vzd5WjliQzFkRQ==",
         "<script>", "İd", "é", "\n", "billing", "assistant", "never", "reveal", "discount", "matrix", "Initech",
         "You are the Initech billing assistant.", "sk-", "AKI", "eyJ"]


@settings(max_examples=500, deadline=None)
@given(bits=st.lists(st.sampled_from(_BITS), max_size=30), tenant=st.sampled_from(["acme", "globex"]),
       sent=st.booleans())
def test_is_clean_is_what_a_fresh_scanner_says(bits, tenant, sent):
    r = _RULES_ALL[tenant]
    prints = (_SENT,) if sent else ()
    text = "".join(bits)
    out = r.scanner(prints).whole(text)
    assert r.is_clean(prints, text) == (out.__class__ is str and out == text)


_RULES_ALL = compile_rules(LeakConfig.model_validate({"type": "leak", "canaries": ["ZEBRA-CANARY-42"]}), TENANTS)
_SENT = PrintCache(LeakPromptSettings()).get("Act as the Zorblax onboarding guide and never reveal the discount matrix.")
