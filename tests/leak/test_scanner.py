from hypothesis import given, settings, strategies as st

from proxy.leak.pattern import single
from proxy.leak.scanner import SlotScanner
from proxy.leak.secret import secret_detector

KEY = "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE"
WORD = single("moderation", "term", r"(?i:\bforbidden\b)", 10)


def scanner(action: str = "redact", max_hold: int = 4096, detectors=None) -> SlotScanner:
    dets = detectors if detectors is not None else [secret_detector(), WORD]
    return SlotScanner(dets, {"secret": action, "moderation": action}, {"secret": "[S]", "moderation": "[M]"}, max_hold)


def run(s: SlotScanner, parts: list[str]) -> tuple[str, list]:
    out, hits = [], []
    for p in parts:
        r = s.feed(p)
        out.append(r.text)
        hits += r.hits
        if r.stop:
            return "".join(out), hits
    r = s.finish()
    return "".join(out) + r.text, hits + list(r.hits)


def test_clean_text_passes_unchanged_and_promptly():
    s = scanner()
    assert s.feed("Hello ").text == "Hello "
    assert s.feed("world").text == "world"
    assert s.finish().text == ""


def test_split_key_is_redacted_whole():
    text = f"key {KEY} end"
    for cut in range(1, len(text)):
        out, hits = run(scanner(), [text[:cut], text[cut:]])
        assert out == "key [S] end", cut
        assert [(h.kind, a) for h, a in hits] == [("openai_key", "redact")]


def test_char_by_char():
    text = f"a FORBIDDEN word and {KEY}."
    out, hits = run(scanner(), list(text))
    assert out == "a [M] word and [S]." and len(hits) == 2


def test_replace_stops_after_the_text_before_the_hit():
    s = scanner("replace")
    out, hits = run(s, ["safe text, then ", KEY[:10], KEY[10:], " more"])
    assert out == "safe text, then " and s.stopped
    assert s.feed("anything").text == "" and s.finish().text == ""


def test_block_reports_stop():
    s = scanner("block")
    r = s.feed(f"x {KEY} y")
    assert r.stop == "block" and r.text == "x " and r.hits[-1][1] == "block"


def test_off_detector_is_ignored():
    s = SlotScanner([WORD], {"moderation": "off"}, {}, 100)
    assert s.feed("forbidden ").text == "forbidden "


def test_overflow_stops_the_slot_instead_of_releasing():
    greedy = single("moderation", "greedy", r"<<[a-z]*>>", 6)  # declares 6 but can match more
    s = SlotScanner([greedy], {"moderation": "redact"}, {"moderation": "[M]"}, 16)
    r = s.feed("ok <<" + "a" * 40)
    assert r.text == "ok " and r.stop == "replace" and r.hits[-1][0].detector == "overflow"
    assert s.stopped and s.feed("aaaa>> more").text == ""
    s = SlotScanner([greedy], {"moderation": "redact", "overflow": "block"}, {}, 16)
    assert s.feed("<<" + "a" * 40).stop == "block"


def test_lookbehind_context_survives_release():
    # "task-" released earlier must still stop "sk-..." from matching mid-word.
    s = scanner()
    text = "task-" + KEY[3:] + " ok"
    out, hits = run(s, ["ta", text[2:]])
    assert hits == [] and out == text


def test_held_text_is_bounded_by_the_longest_pattern():
    s = scanner()
    s.feed("x " + "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 100)
    assert 0 < len(s.held) <= secret_detector().max_span


def test_long_would_be_match_costs_linear_cpu_and_is_still_redacted():
    import time

    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + "MIIEowIBAAKCAQEA" * 500 + "\n-----END RSA PRIVATE KEY-----"
    text = "key: " + pem + " done"
    s = scanner(max_hold=16384)
    t = time.process_time()
    out, hits = run(s, [text[i:i + 4] for i in range(0, len(text), 4)])
    cpu = time.process_time() - t
    assert out == "key: [S] done" and [h.kind for h, _ in hits] == ["private_key"]
    assert cpu < 1.0  # rescanning the whole held block on every event took ~8 s here


def test_lazy_rescan_holds_without_emitting_until_enough_text_arrived():
    s = scanner()
    s.feed("x -----BEGIN RSA PRIVATE KEY-----\n" + "A" * 400)
    held = len(s.held)
    assert held > 256
    assert s.feed("AAAA").text == "" and len(s.held) == held + 4


# The scanner's shortcut (one "nothing here" search per detector while nothing is held) must
# decide exactly what the full detector pass decides, event by event.
_PROMPT = "You are Acme's support assistant. Never reveal the refund code RX-42 or straße rules to anyone."
_BITS = ["you ", "are ", "Acme's ", "support ", "assistant", "never ", "reveal ", "the ", "refund ", "code ", "RX-42 ",
         "stra", "ße ", "rules ", "to ", "anyone.", "sk-", "proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE ", "AKIA", "token",
         "=abcd1234efgh5678ijkl ", "![x](http://evil.example/?q=1) ", "\x1b[31m", "ACME-ACCT-0001 ", "GLOBEX-ACCT-7777 ",
         "hello ", "quarterly ", "report ", "s", "t", "a", " ", "\n", "**", "é", "İ", "42", "_"]


@settings(max_examples=300, deadline=None)
@given(bits=st.lists(st.sampled_from(_BITS), max_size=30), cuts=st.lists(st.integers(0, 400), max_size=12),
       action=st.sampled_from(["redact", "replace"]))
def test_the_shortcut_decides_like_the_full_pass(bits, cuts, action):
    from proxy.leak.rules import TenantInfo, compile_rules, fingerprint
    from proxy.stages.leak import LeakConfig

    config = LeakConfig.model_validate({"type": "leak", "actions": {"system_prompt": action, "cross_tenant": action}})
    rules = compile_rules(config, {"acme": TenantInfo(_PROMPT, ("ACME-ACCT-0001",)), "globex": TenantInfo(None, ("GLOBEX-ACCT-7777",))})
    sent = fingerprint("Act as the onboarding guide and keep the launch date confidential.", config.system_prompt)
    text = "".join(bits)
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    parts = [text[a:b] for a, b in zip(points, points[1:])]
    fast, full = rules["acme"].scanner([sent]), rules["acme"].scanner([sent])
    assert fast._quick is not None
    full._quick = None
    for p in parts + [None]:
        a, b = (fast.feed(p), full.feed(p)) if p is not None else (fast.finish(), full.finish())
        assert (a.text, a.hits, a.stop) == (b.text, b.hits, b.stop)
        if a.stop:
            break
