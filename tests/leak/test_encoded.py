"""Encoded secrets (base64, hex, rot13 of a built-in key shape) through the leak stage, any split."""

import base64
import codecs

import pytest
from hypothesis import given, settings, strategies as st

from proxy.leak.encoded import KEY_STARTS, encoded_alternatives, is_key
from proxy.leak.pattern import PatternDetector
from tests.stages.test_leak import each_way, split, sse, stage, started, stream_through
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
SAMPLE_PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq1\nd4e5f6==\n-----END RSA PRIVATE KEY-----"


def detector():
    alts, checks = encoded_alternatives()
    return PatternDetector(alts, checks)


def found(text):
    """(kind, text) per hit, overlapping hits merged as the scanner merges them (the start-of-run and
    the anywhere-in-the-run alternatives both find a key at the start of a run)."""
    out = []
    for h in sorted(detector().scan(text, 0, final=True)[0], key=lambda h: (h.start, -h.end)):
        if out and h.start < out[-1][2]:
            out[-1][2] = max(out[-1][2], h.end)
        else:
            out.append([h.kind, h.start, h.end])
    return [(k, text[s:e]) for k, s, e in out]


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
    assert found(text) == [(enc.split()[0].lower().replace("url", ""), ENCODINGS[enc](key))]


def test_rot13_of_a_pem_header_is_found():
    # Was a documented gap (the header has spaces, the rot13 alternative's run does not): now its own
    # alternative, header and body up to the END line (without one: as far as key material goes, as
    # for a plain PEM block).
    text = f"here it is: {ENCODINGS['rot13'](PEM)}\n\nDone."
    [(kind, span)] = found(text)
    assert kind == "rot13" and span.startswith(ENCODINGS["rot13"](PEM))
    whole = ENCODINGS["rot13"](SAMPLE_PEM)
    assert found(f"ok {whole} bye") == [("rot13", whole)]


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
    async for got, denied, ex in each_way(text, cuts, sizes, actions={"secret": action}):
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


# ---------------------------------------------------------------- a key inside a longer encoded text

import random  # noqa: E402
import re  # noqa: E402

from proxy.leak.encoded import _ANCHORS_B64, _RUN, _b64_choices, inner_alternatives  # noqa: E402

# text before the key: every length mod 3 (base64 alignment), a key always at a word start
PROSE = ["Here is the config you asked for. ", "token: ", "The key is ", "{\"api_key\": \"", "export OPENAI_API_KEY=",
         " ", "a ", "ab ", "abc: ", "Line one.\nLine two: ", ""]


def _esc(kind):
    return {
        "\\x": lambda s: "".join(f"\\x{b:02x}" for b in s.encode()),
        "\\X upper": lambda s: "".join(f"\\x{b:02X}" for b in s.encode()),
        "\\u": lambda s: "".join(f"\\u{ord(c):04x}" for c in s),
        "\\U": lambda s: "".join(f"\\U{ord(c):08x}" for c in s),
        "\\u{}": lambda s: "".join(f"\\u{{{ord(c):x}}}" for c in s),
        "&#": lambda s: "".join(f"&#{ord(c)};" for c in s),
        "&#x": lambda s: "".join(f"&#x{ord(c):x};" for c in s),
        "half": lambda s: "".join(f"\\x{ord(c):02x}" if i % 2 else c for i, c in enumerate(s)),  # every other one
    }[kind]


WRAPPED = {
    "base64": lambda t: base64.b64encode(t.encode()).decode(),
    "base64url": lambda t: base64.urlsafe_b64encode(t.encode()).decode().rstrip("="),
    "mime76": lambda t: base64.encodebytes(t.encode()).decode().rstrip("\n"),
    "pem64": lambda t: "\n".join(re.findall(".{1,64}", base64.b64encode(t.encode()).decode())),
    "crlf76": lambda t: "\r\n".join(re.findall(".{1,76}", base64.b64encode(t.encode()).decode())),
    "indented": lambda t: "\n    ".join(re.findall(".{1,64}", base64.b64encode(t.encode()).decode())),
    "json\\n": lambda t: "\\n".join(re.findall(".{1,64}", base64.b64encode(t.encode()).decode())),
    "hex": lambda t: t.encode().hex(),
    "HEX": lambda t: t.encode().hex().upper(),
    "rot13": lambda t: codecs.encode(t, "rot13"),
    **{"esc " + k: _esc(k) for k in ("\\x", "\\X upper", "\\u", "\\U", "\\u{}", "&#", "&#x", "half")},
}
KIND = {k: ("base64" if k in ("base64", "base64url", "mime76", "pem64", "crlf76", "indented", "json\\n") else
            "hex" if k in ("hex", "HEX") else "rot13" if k == "rot13" else "escaped") for k in WRAPPED}


def _b64_lenient(chars):
    chars = re.sub(r"[^A-Za-z0-9+/_\-]", "", chars)
    chars = chars[: len(chars) // 4 * 4]
    return base64.b64decode(chars.replace("-", "+").replace("_", "/")).decode("latin-1")


def carries(text, key):
    """Whether `text` still holds the middle of `key` in any encoding here (decoded at every phase)."""
    mid = key[5:19]
    views = [text, codecs.decode(text, "rot13"),
             re.sub(r"\\x([0-9a-fA-F]{2})|\\u\{([0-9a-f]+)\}|\\U([0-9a-f]{8})|\\u([0-9a-f]{4})|&#x([0-9a-f]+);|&#([0-9]+);",
                    lambda m: chr(int(next(g for g in m.groups() if g), 10 if m.group(6) else 16)), text)]
    for run in re.findall(r"(?:[A-Za-z0-9+/_\-]|\r?\n[ \t]*|\\n)+", text):
        run = run.replace("\\n", "")
        for p in range(4):
            views.append(_b64_lenient(run[p:]))
    for run in re.findall(r"[0-9A-Fa-f]+", text):
        for p in range(2):
            views.append(bytes.fromhex(run[p:][: len(run[p:]) // 2 * 2]).decode("latin-1"))
    return any(mid in v for v in views)


def rules():
    from proxy.leak.rules import TenantInfo, compile_rules
    from proxy.stages.leak import LeakConfig
    return compile_rules(LeakConfig(type="leak"), {"acme": TenantInfo(None, ())})["acme"]


RULES = rules()


def whole(text):
    out = RULES.scanner().whole(text)
    return out if isinstance(out, str) else out.text


def test_the_carries_check_sees_every_planted_form():
    # the oracle of the tests below: it must see the key in every form it is planted in
    for name, enc in WRAPPED.items():
        for pre in PROSE:
            assert carries("x " + enc(pre + KEYS[2] + " thanks") + " y", KEYS[2]), (name, pre)


def test_each_alignment_has_anchors_given_by_the_key_start_alone():
    # every anchor is the base64 of the key start at its alignment (a partly given character: one of
    # its possible values), so it is in the base64 of any text holding the key start there
    assert {(s, a) for _, a, _, s in _ANCHORS_B64} == {(s, a) for s in KEY_STARTS for a in range(3)}
    forms: dict[tuple[str, int], set[str]] = {}
    for anchor, a, k, s in _ANCHORS_B64:
        choices = dict(_b64_choices(s.encode(), a))
        assert len(anchor) >= 3 and all(c in choices[k + i] for i, c in enumerate(anchor)), (anchor, s, a)
        forms.setdefault((s, a), set()).add(anchor)
        for pad in (b"", b"x", b"xy", b"The key is ", b"A longer text, then the key: "):
            if len(pad) % 3 == a:
                enc = base64.b64encode(pad + s.encode() + b"0123456789").decode()
                # a character only partly given by the key start (first or last) may be any of its values
                assert re.search("".join(re.escape(c) if len(choices[k + i]) == 1 else "[" + re.escape("".join(choices[k + i])) + "]"
                                         for i, c in enumerate(anchor)), enc), (anchor, s, pad)
    for (s, a), fs in forms.items():  # and one of the forms is the text itself
        for pad in (b"", b"x", b"xy", b"The key is ", b"A longer text, then the key: "):
            if len(pad) % 3 == a:
                enc = base64.b64encode(pad + s.encode() + b"0123456789").decode()
                assert any(f in enc for f in fs), (s, a, pad, sorted(fs))


@pytest.mark.parametrize("name", sorted(WRAPPED))
@pytest.mark.parametrize("key", KEYS + [SAMPLE_PEM])
def test_a_key_inside_a_longer_encoded_text_is_found(name, key):
    if name == "rot13" and key == SAMPLE_PEM:
        key = SAMPLE_PEM  # rot13 of prose with a PEM block: the rot13_pem alternative
    for pre in PROSE:
        if key == SAMPLE_PEM and name.startswith("esc"):
            continue  # escaped PEM blocks are not covered (spaces and line breaks end an escape run)
        enc = WRAPPED[name](pre + key + "\nThat is all, thanks.")
        text = f"Sure:\n{enc}\n\nAnything else?"
        kinds = {k for k, _ in found(text)}
        assert KIND[name] in kinds, (pre, kinds)
        out = whole(text)
        assert not carries(out, key) and out.startswith("Sure:\n") and out.endswith("Anything else?"), (pre, out)


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(sorted(WRAPPED)), key=st.sampled_from(KEYS),
       pre=st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,:;=\"'\n", max_size=60),
       post=st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABC0123456789.,:;\n", max_size=60),
       cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=40),
       sizes=st.lists(st.integers(min_value=0, max_value=12), max_size=4),
       action=st.sampled_from(["redact", "replace", "block"]))
async def test_a_key_at_any_place_in_an_encoded_text_never_reaches_the_client(name, key, pre, post, cuts, sizes, action):
    """The key at a random place (any byte offset, so any base64 alignment) inside encoded prose,
    the stream cut into events at random places and grouped into reads of any sizes."""
    pre = pre + " " if pre and pre[-1].isalnum() else pre  # a key starts a word (else it is not a key)
    value = WRAPPED[name](pre + key + " " + post)
    text = f"Encoded as asked:\n{value}\nAnything else?"
    async for got, denied, ex in each_way(text, cuts, sizes, actions={"secret": action}):
        assert not carries(got, key)
        assert (denied is not None) == (action == "block")
        if action == "redact":
            assert got.startswith("Encoded as asked:\n") and got.endswith("Anything else?") and "[REDACTED:secret]" in got
        assert any(d.detail.get("kind") == KIND[name] for d in ex.decisions)


@pytest.mark.parametrize("name", ["base64", "mime76", "pem64", "crlf76", "hex", "esc \\x", "esc &#"])
def test_every_two_way_split_of_a_key_inside_encoded_text(name):
    # each base64 alignment (0, 1, 2 bytes of text before the key, and a longer text)
    for pre in ("", "a ", "ab ", "The key is: "):
        value = WRAPPED[name](pre + KEYS[2] + " ok")
        text = f"ok: {value} bye"
        for cut in range(len(text) + 1):
            s = RULES.scanner()
            out = s.feed(text[:cut]).text + s.feed(text[cut:]).text + s.finish().text
            assert not carries(out, KEYS[2]) and out.startswith("ok: ") and out.endswith(" bye"), (pre, cut, out)


def test_a_line_break_inside_the_anchor_itself():
    # 64-column wrapping, the text before the key growing one byte at a time: the encoded key start
    # (any alignment) falls across the line break at every offset
    for n in range(36, 52):
        for key in (KEYS[0], KEYS[2]):
            text = "ok:\n" + WRAPPED["pem64"]("x" * n + " " + key + " thanks") + "\nThat is all."
            out = whole(text)
            assert not carries(out, key) and out.endswith("\nThat is all."), (n, out)


RNG = random.Random(5)
CLEAN_ENCODED = [
    base64.b64encode(b"The quarterly report is due on Friday; the finance team needs the final figures by noon.").decode(),
    base64.encodebytes(b"task-management-system-version-2 and risk-assessment-framework-2024 and disk-cleanup-utility-v3"
                       b" plus the ask-me-anything-session-notes-2025 " * 4).decode(),
    "\n".join(re.findall(".{1,64}", base64.b64encode(bytes(RNG.randrange(256) for _ in range(3000))).decode())),
    base64.b64encode(bytes(RNG.randrange(256) for _ in range(2000))).decode(),
    "sha256:" + "".join(RNG.choice("0123456789abcdef") for _ in range(64)),
    bytes(RNG.randrange(256) for _ in range(400)).hex(),
    "The bytes 736b2d and 414b4941 are just hex.",
    'printf "\\x48\\x65\\x6c\\x6c\\x6f, \\x77\\x6f\\x72\\x6c\\x64\\n"',
    "It&#8217;s here &#x2014; see &#169; 2024, R&amp;D and Q&A, AT&T.",
    "\\u0048\\u0065\\u006c\\u006c\\u006f \\u{1F600}",
    "Please summarise this note in one sentence: the quarterly report is due on Friday.",
]


@pytest.mark.parametrize("text", CLEAN_ENCODED)
def test_clean_encoded_text_passes_byte_identical(text):
    assert found(text) == []
    assert whole(text) == text
    for cuts in ([], [7], [1, 2, 3, 64, 65, 77, 300], list(range(0, len(text), 5))):
        s = RULES.scanner()
        out = "".join(s.feed(p).text for p in split(text, cuts)) + s.finish().text
        assert out == text, cuts


def test_the_first_byte_of_a_clean_stream_leaves_with_the_first_event():
    """TTFT: the new detectors (a key anywhere in an encoded run, escapes, rot13 PEM) never hold the first
    byte of a typical first event; at most its last few characters wait for the next event (those
    that may begin an anchor). The other detectors' holds are unchanged (their own tests)."""
    inner = PatternDetector(*inner_alternatives())
    firsts = ["Sure", "Sure! Here", "Hello", "The answer", "I", "A", "I think", "Yes,", "Certainly. The", "Here is the base64:",
              "Of course", "No", "Well, ", "The doc", "In general", "Below", "Let", "Absolutely", "Great", "Fine", "Ok", "Hi",
              "Lol", "Fun", "Dad", "Bob", "Jazz", "Ze", "10", "OK, so"]
    for first in firsts:
        hits, hold = inner.scan(first, 0, final=False)
        assert hits == [] and hold >= 1 and len(first) - hold <= 3, (first, hold)
    # the cost, said plainly: an event that is wholly the beginning of an anchor, as written, waits for
    # the next one ("HB": base64 of "ghp_" two bytes into a group is "HBf"; "4": "4b3hiL" for xoxb-,
    # 7362... hex); the anchors are exact base64 characters, so other cases of them pass ("Nah", "hb")
    assert inner.scan("HB", 0, final=False) == ([], 0) and inner.scan("4", 0, final=False) == ([], 0)
    assert inner.scan("Nah", 0, final=False) == ([], 3) and inner.scan("hb", 0, final=False) == ([], 2)
    # the whole rule set: the first byte of each goes out with it (or was held before these detectors too)
    held_before = {"A"}  # word anchors: "a" begins api/access/auth/AKIA...
    for first in firsts:
        out = RULES.scanner().feed(first).text
        assert first.startswith(out) and (out[:1] == first[:1] or first in held_before), (first, out)


def test_a_held_candidate_is_bounded_and_released_identical():
    # a clean base64 blob that starts with an anchor: held while it goes on (bounded by the cap), then
    # judged and released unchanged
    blob = "c2st" + base64.b64encode(bytes(RNG.randrange(256) for _ in range(30_000))).decode()
    alt = {a.group: a for a in inner_alternatives()[0]}
    bound = max(a.max_len for a in alt.values())
    assert alt["secret__base64_inner"].max_len < RULES.max_hold and bound < RULES.max_hold
    s = RULES.scanner()
    out, most = [], 0
    for p in split(blob, list(range(0, len(blob), 7))):
        out.append(s.feed(p).text)
        most = max(most, len(s.held))
    out.append(s.finish().text)
    assert "".join(out) == blob and most <= _RUN * 2 + 64, most


# ---------------------------------------------------------------- case: base64 anchors as written, hex/escapes any case

from dataclasses import replace  # noqa: E402

_INNER = {"secret__base64_inner", "secret__hex_inner", "secret__escaped", "secret__rot13_pem"}


def test_exact_case_alternatives_are_the_base64_and_rot13_ones():
    alts = {a.group: a for a in encoded_alternatives()[0]}
    assert {g for g, a in alts.items() if a.case_sensitive} == {"secret__base64", "secret__base64_inner", "secret__rot13"}
    for g in ("secret__base64", "secret__base64_inner", "secret__rot13"):
        assert "(?i" not in alts[g].source  # the pattern itself is exact-case: a match starts with an anchor as written
    # the base64 anchors' first characters: digits, + /, upper-case letters, and the few lower-case ones some
    # key start forces (eyJ at alignment 2: l; gh*_ at alignment 1: G/W/m/2; sk- at alignment 2: z)
    firsts = {a[0] for a, _, _, _ in _ANCHORS_B64}
    assert {c for c in firsts if c.islower()} == {"l", "m", "z"}, sorted(firsts)
    assert not firsts & set("ndfv")


def _mixed_case(rng, text):
    return "".join(c.upper() if rng.random() < 0.3 else c for c in text)


_PIECES_B64 = sorted({a for a, _, _, _ in _ANCHORS_B64}) + ["NRL", "nrl", "Nrl", "LEU", "leu", "hbf", "HBF", "c2st", "C2ST"]


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_the_anchor_index_finds_what_running_every_encoded_pattern_finds(data):
    """Differential: the encoded alternatives with their anchor index (base64/rot13 ones as written,
    hex/escape ones any case) give the hits that running every pattern over the whole text gives, at
    every event boundary; an index may hold more, never less."""
    alts, checks = encoded_alternatives()
    anchored, naive = PatternDetector(alts, checks), PatternDetector([replace(a, anchors=None) for a in alts], checks)
    rng = random.Random(data.draw(st.integers(0, 10**6)))
    pieces = data.draw(st.lists(st.sampled_from(
        ["Sure, ", "the ", "KEY ", "is: ", " ", "\n", "x", "ab", "Nah", "4", "0x", "\\x", "\\X", "&#", "&#X", "\\U"] + _PIECES_B64
        + ["@b64", "@b64url", "@hex", "@HEX", "@esc", "@ESC", "@rot"]), max_size=12))
    text = ""
    for piece in pieces:
        if piece.startswith("@"):
            key = rng.choice(KEYS)
            plain = rng.choice(["", "x ", "xy ", "The key is ", "x"]) + key[:rng.randrange(8, len(key) + 1)]
            piece = {"@b64": lambda: WRAPPED["base64"](plain), "@b64url": lambda: WRAPPED["base64url"](plain),
                     "@hex": lambda: plain.encode().hex(), "@HEX": lambda: plain.encode().hex().upper(),
                     "@esc": lambda: _esc("\\x")(plain), "@ESC": lambda: _esc("\\X upper")(plain).replace("\\x", "\\x", 1),
                     "@rot": lambda: codecs.encode(plain, "rot13")}[piece]()
        text += piece if rng.random() < 0.7 else _mixed_case(rng, piece)
    cuts = sorted({len(text)} | {rng.randrange(len(text) + 1) for _ in range(6)})
    for n in cuts:
        for final in ((False, True) if n == len(text) else (False,)):
            hits, hold = anchored.scan(text[:n], 0, final)
            want_hits, want_hold = naive.scan(text[:n], 0, final)
            assert hits == want_hits, (text[:n], final)
            assert hold <= want_hold, (text[:n], final, hold, want_hold)


@pytest.mark.parametrize("key", KEYS)
def test_a_key_inside_base64_at_each_alignment_every_two_way_split_and_one_character_events(key):
    # the text before the key in mixed case, each length mod 3: the encoded key start at each alignment
    for pre in ("", "- ", "Xy ", "A b ", "The KEY is: ", "Key: ", "It is: "):  # lengths 0 2 0 1 0 2 1 mod 3
        for name in ("base64", "base64url"):
            text = f"ok: {WRAPPED[name](pre + key + ' ok')} bye"
            for cut in range(len(text) + 1):
                s = RULES.scanner()
                out = s.feed(text[:cut]).text + s.feed(text[cut:]).text + s.finish().text
                assert not carries(out, key) and out.startswith("ok: ") and out.endswith(" bye"), (pre, name, cut, out)
            s = RULES.scanner()
            out = "".join(s.feed(c).text for c in text) + s.finish().text
            assert not carries(out, key) and out.startswith("ok: ") and out.endswith(" bye"), (pre, name, out)


@pytest.mark.parametrize("form", ["hex", "HEX", "Hex mixed", "0X", "esc \\x", "esc \\X upper", "esc \\x mixed", "esc \\U", "esc \\u",
                                  "esc &#x", "esc &#X", "esc &#X upper", "esc &#"])
@pytest.mark.parametrize("key", [KEYS[0], KEYS[1], KEYS[2], KEYS[4]])
def test_hex_and_escape_anchors_stay_case_insensitive(form, key):
    rng = random.Random(7)
    for pre in ("", "a ", "The key is "):
        plain = pre + key
        value = {"hex": plain.encode().hex(), "HEX": plain.encode().hex().upper(),
                 "Hex mixed": _mixed_case(rng, plain.encode().hex()), "0X": "0X" + key.encode().hex().upper(),
                 "esc \\x": _esc("\\x")(plain), "esc \\X upper": _esc("\\X upper")(plain),
                 "esc \\x mixed": "".join(f"\\x{_mixed_case(rng, f'{b:02x}')}" for b in plain.encode()),
                 "esc \\U": _esc("\\U")(plain).upper().replace("\\U", "\\U"), "esc \\u": _esc("\\u")(plain).upper().replace("\\U", "\\u"),
                 "esc &#x": _esc("&#x")(plain), "esc &#X": _esc("&#x")(plain).replace("&#x", "&#X"),
                 "esc &#X upper": _esc("&#x")(plain).upper(), "esc &#": _esc("&#")(plain)}[form]
        text = f"Here: {value} done"
        assert not carries(whole(text), key), (form, pre, whole(text))
        for cut in range(0, len(text) + 1, 3):
            s = RULES.scanner()
            out = s.feed(text[:cut]).text + s.feed(text[cut:]).text + s.finish().text
            assert not carries(out, key) and out.startswith("Here: ") and out.endswith(" done"), (form, pre, cut, out)


PARAGRAPH = ("Thanks for the question. The quarterly report is due on Friday, and the finance team needs the final figures "
             "by noon. I would suggest that you send the draft to Linda and David first, then schedule a call with the "
             "board. If the numbers still look off, we can go over them again on Monday. In the meantime, here is a short "
             "summary of what changed: revenue grew by eleven percent, costs fell in the second half, and the new "
             "pricing model helped us win back several customers we had lost last year. Overall, it was a good result, "
             "although the outlook for the coming quarter is less certain. Let me know if you want me to add a chart, "
             "a table of the regional figures, or a brief note on the assumptions behind the forecast. Of course, "
             "I can also draft an email to the whole team explaining the results in plain language. Should I include "
             "the detailed breakdown of travel and office expenses as well, or keep it at the level of the main lines?")


def _held_word_ends(d: PatternDetector, text: str) -> list[str]:
    """Prose streamed word by word (an LLM's tokens: a leading space and a word): what each delta leaves held."""
    buf, out = "", []
    for w in re.findall(r"\s*\S+", text):
        buf += w
        hold = d.scan(buf, 0, False)[1]
        if hold < len(buf):
            out.append(buf[hold:])
    return out


def test_lower_case_prose_is_not_held_for_the_base64_anchors():
    det = RULES.detectors[0]
    alts = det._set.alts
    assert _INNER <= {a.group for a in alts}
    now = _held_word_ends(det, PARAGRAPH)
    folded = _held_word_ends(PatternDetector([replace(a, case_sensitive=False) for a in alts], det._checks), PARAGRAPH)
    without = _held_word_ends(PatternDetector([a for a in alts if a.group not in _INNER], det._checks), PARAGRAPH)
    words = len(re.findall(r"\s*\S+", PARAGRAPH))
    # measured: 177 words; held after 10 without the inner anchors, 26 now, 62 with them searched in any case
    assert len(without) <= len(now) < len(folded) / 2 and len(now) - len(without) <= words * 0.10, (len(without), len(now), len(folded))
    # what the base64 anchors add is only the lower-case anchor starts some key start forces ("l" of leU,
    # "m" of mdo..); words ending in n, d, f, v, w, g (held when searched in any case) are not held
    forced = {a[:j] for a, _, _, _ in _ANCHORS_B64 if a[0].islower() for j in range(1, len(a))}
    extra = [h for h in now if h not in without]
    assert extra and all(h in forced for h in extra), extra
    assert {h[-1] for h in folded} >= set("nfwg") and not {h[-1] for h in now} & set("ndfvwg"), now
    # the same for a single word: "and", "in", "of" pass; "will" waits one event for its "l"
    inner = PatternDetector(*inner_alternatives())
    for w in ("and", "in", "of", "Fun", "dad", "given", "if", "Nah", "cleaned", "hold", "Jacket"):
        assert inner.scan(w, 0, False) == ([], len(w)), w
    assert inner.scan("will", 0, False) == ([], 3) and inner.scan("from", 0, False) == ([], 3)
    assert inner.scan("naH", 0, False) == ([], 2) and inner.scan("Jazz", 0, False) == ([], 3)  # "HBf", "zay"
