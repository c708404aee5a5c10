"""Encoded secrets (base64, hex, rot13 of a built-in key shape) through the leak stage, any split."""

import base64
import codecs

import pytest
from hypothesis import given, settings, strategies as st

from proxy.leak.encoded import KEY_STARTS, encoded_alternatives, is_key
from proxy.leak.pattern import PatternDetector
from tests.stages.test_leak import reads_through, split, sse, stage, started, stream_through
from proxy.pipeline.chain import Chain
from tests.harness import client_text

KEYS = ["AKIAIOSFODNN7EXAMPLE", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "sk-proj-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV", "xoxb-123456789012-1234567890123-abcdefghijABCDEFGHIJklmn",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"]
ENCODINGS = {
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    "hex": lambda s: s.encode().hex(),
    "HEX with 0x": lambda s: "0x" + s.encode().hex().upper(),
    "rot13": lambda s: codecs.encode(s, "rot13"),
}
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq1"


def detector():
    alts, checks = encoded_alternatives()
    return PatternDetector(alts, checks)


def test_every_built_in_key_start_is_covered():
    from proxy.leak.secret import BUILTIN
    for name, (_, _, anchors, _) in BUILTIN.items():
        if name != "generic_secret":
            assert all(any(s.lower().startswith(a) or a.startswith(s.lower()) for s in KEY_STARTS) for a in anchors), name
    assert all(is_key(k) for k in KEYS + [PEM])


@pytest.mark.parametrize("enc,key", [(e, k) for e in sorted(ENCODINGS) for k in KEYS + [PEM]
                                     if not (e == "rot13" and k == PEM)])
def test_encoded_keys_are_found_whole(enc, key):
    text = f"here it is: {ENCODINGS[enc](key)} - done"
    hits, _ = detector().scan(text, 0, final=True)
    assert [(h.kind, text[h.start:h.end]) for h in hits] == [(enc.split()[0].lower().replace("url", ""), ENCODINGS[enc](key))]


def test_rot13_of_a_pem_header_is_the_documented_gap():
    # rot13 of "-----BEGIN ... PRIVATE KEY-----" (with spaces) is not decoded (encoded.py says why);
    # asserted so that closing the gap shows up here and in the README's list of limits.
    text = f"here it is: {ENCODINGS['rot13'](PEM)} - done"
    assert detector().scan(text, 0, final=True)[0] == []


@pytest.mark.parametrize("text", [
    "c2stYWJj is short",  # base64 of "sk-abc": not a key shape
    "c2st" + "A" * 40,  # decodes to "sk-" + bytes that are not key characters
    "digest 736b2d" + "00" * 24,  # hex of "sk-" + NUL bytes
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "fx-forward-contract-settlement-dates are due",  # rot13 would be sk-..., but prose: one case, no digits
    "the tuc_ folder and rlWords",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
])
def test_clean_lookalikes_pass(text):
    assert detector().scan(text, 0, final=True)[0] == []


@settings(max_examples=60, deadline=None)
@given(enc=st.sampled_from(sorted(ENCODINGS)), key=st.sampled_from(KEYS),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
       sizes=st.lists(st.integers(min_value=0, max_value=12), max_size=4),
       action=st.sampled_from(["redact", "replace", "block"]))
async def test_an_encoded_key_never_reaches_the_client_in_any_split(enc, key, cuts, sizes, action):
    value = ENCODINGS[enc](key)
    text = f"Sure, encoded as asked: {value}\nAnything else?"
    for run in (stream_through, lambda c, e, evs: reads_through(c, e, evs, sizes)):
        chain = Chain([stage(actions={"secret": action})])
        ex = await started(chain)
        out, denied = await run(chain, ex, sse(split(text, cuts)))
        got = client_text(out)
        assert value[4:24] not in got
        assert (denied is not None) == (action == "block")
        if action == "redact":
            assert got == "Sure, encoded as asked: [REDACTED:secret]\nAnything else?"
        assert any(d.detail.get("kind") == enc.split()[0].lower().replace("url", "") for d in ex.decisions)


async def test_every_two_way_split_of_a_base64_key():
    value = ENCODINGS["base64"](KEYS[2])
    text = f"b64: {value}."
    for cut in range(len(text) + 1):
        chain = Chain([stage()])
        ex = await started(chain)
        out, _ = await stream_through(chain, ex, sse(split(text, [cut])))
        assert client_text(out) == "b64: [REDACTED:secret].", cut


@pytest.mark.parametrize("enc", sorted(ENCODINGS))
def test_every_two_way_split_of_each_encoding(enc):
    from proxy.leak.rules import TenantInfo, compile_rules
    from proxy.stages.leak import LeakConfig
    rules = compile_rules(LeakConfig(type="leak"), {"acme": TenantInfo(None, ())})["acme"]
    for key in (KEYS[0], KEYS[2]):
        value = ENCODINGS[enc](key)
        text = f"ok: {value} bye"
        for cut in range(len(text) + 1):
            s = rules.scanner()
            out = s.feed(text[:cut]).text + s.feed(text[cut:]).text + s.finish().text
            assert out == "ok: [REDACTED:secret] bye", (key, cut, out)
