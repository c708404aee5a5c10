import re

import regex
from hypothesis import given, settings, strategies as st

from proxy.leak.pattern import Alternative, PatternDetector, compile_alternative, single, tail_of


def det(pat: str, check=None) -> PatternDetector:
    return single("t", "k", pat, 64, check)


def test_complete_match_is_a_hit():
    hits, hold = det(r"abc").scan("xx abc yy", 0, final=False)
    assert [(h.detector, h.kind, h.start, h.end) for h in hits] == [("t", "k", 3, 6)]
    assert hold == 9


def test_match_at_the_end_may_grow_and_is_held():
    hits, hold = det(r"ab+").scan("xx abb", 0, final=False)
    assert hits == [] and hold == 3
    hits, hold = det(r"ab+").scan("xx abb", 0, final=True)
    assert [(h.start, h.end) for h in hits] == [(3, 6)] and hold == 6


def test_partial_match_is_held_from_its_start():
    assert det(r"secret-[0-9]{4}").scan("hello secr", 0, final=False) == ([], 6)
    assert det(r"secret-[0-9]{4}").scan("hello world", 0, final=False) == ([], 11)


def test_an_earlier_longer_partial_is_not_hidden_by_a_later_complete_match():
    # regex's own partial search would answer with the complete "b" and miss "abc..."
    assert regex.compile("abcd|b").search("xabc", partial=True).group() == "b"
    assert det(r"abcd|b").scan("xabc", 0, final=False)[1] == 1
    assert tail_of(regex.compile("abcd|b")).search("xabc", partial=True).start() == 1


def test_start_offset_keeps_lookbehind_context():
    d = det(r"(?<![a-z])key")
    assert d.scan("monkey", 3, final=True)[0] == []
    assert len(d.scan("a key", 2, final=True)[0]) == 1


def test_alternatives_name_detector_and_kind_and_overlap():
    alts = [Alternative("a__num", "a", "num", r"[0-9]{3}", 3), Alternative("b__url", "b", "url", r"<[^>]*>", 64)]
    d = PatternDetector(alts, {"a__num": lambda m: m.group() != "000"})
    hits, _ = d.scan("000 <x 123> 456", 0, final=True)
    # the number inside the url is found although the url covers it
    assert [(h.detector, h.kind, h.start) for h in hits] == [("b", "url", 4), ("a", "num", 7), ("a", "num", 12)]
    assert d.max_span == 64 and d.detectors == ("a", "b")


ANCHORED = [Alternative("s__key", "s", "key", r"(?<![a-z])key-[0-9]{4}", 8, ("key-",), True),
            Alternative("s__img", "s", "img", r"!\[[a-z]*\]", 20, ("![",), False)]


def test_anchors_skip_clean_text_and_hold_a_started_anchor():
    d = PatternDetector(ANCHORED)
    assert d.scan("nothing to see here", 0, final=False) == ([], 19)
    assert d.scan("the ke", 0, final=False) == ([], 4)  # "ke" may become "key-"
    assert d.scan("monke", 0, final=False) == ([], 5)  # not at a word start: no anchor
    assert d.scan("pic !", 0, final=False) == ([], 4)  # free anchors need no word start
    hits, hold = d.scan("a key-1234 and ![x] ok", 0, final=False)
    assert [h.kind for h in hits] == ["key", "img"] and hold == 22


def test_anchors_are_case_insensitive_and_longer_anchors_include_shorter_ones():
    alts = [Alternative("a__x", "a", "x", r"(?i:ab[0-9])", 3, ("ab",), True),
            Alternative("a__y", "a", "y", r"(?i:abc[0-9])", 4, ("abc",), True)]
    hits, _ = PatternDetector(alts).scan("AB1 abc2", 0, final=True)
    assert [h.kind for h in hits] == ["x", "y"]


def test_compiled_alternatives_are_shared_through_the_cache():
    cache = {}
    a = compile_alternative(ANCHORED[0], cache)
    assert compile_alternative(ANCHORED[0], cache) is a and len(cache) == 1


def test_an_anchor_whose_lowercase_changes_length_runs_every_pattern():
    alts = [Alternative("a__x", "a", "x", r"(?i:İd-[0-9]{3})", 6, ("İd-",), False)]
    hits, _ = PatternDetector(alts).scan("see İD-123 now", 0, final=True)
    assert [h.kind for h in hits] == ["x"]


# The one-search shortcut for clean text must give what the full anchor pass gives.
_PIECES = ["sk-", "SK-proj-", "AKIA", "ghp_", "github_pat_", "xox", "AIza", "sk_live_", "eyJ", "-----BEGIN ", "![",
           "<img", "\x1b[", "\x1b]", "\x85", "password", "Token", "ACME-1", "GLOBEX-2", "globex", "acme", "İd",
           "a", "s", "k", "x", "g", "-", "_", "=", ":", " ", "  ", "\n", "0", "9", "Z", "q", "é", "(", "]",
           # base64 anchors (as written only) and other cases of them; letters re.I folds to ASCII
           "NrL", "nrl", "NRL", "leU", "LEU", "le", "HBf", "hbf", "HB", "c2st", "C2ST", "Z2h", "z2H", "4b3", "G", "m", "\u212a", "\u017f"]


def _full_pass(d: PatternDetector) -> PatternDetector:
    """The same detector with the shortcut switched off (its search always finds something)."""
    import copy
    import re

    aset = copy.copy(d._set)
    aset.quiet_re = re.compile("")
    aset.presence = None
    return PatternDetector(aset, d._checks)


@settings(max_examples=800, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES + ["Please summarise the quarterly report ", "finance team "]), max_size=40),
       start=st.integers(0, 10), final=st.booleans())
def test_clean_text_shortcut_equals_the_full_anchor_pass(pieces, start, final):
    from proxy.leak.rules import TenantInfo, compile_rules
    from proxy.stages.leak import LeakConfig

    global _RULES
    if _RULES is None:
        _RULES = compile_rules(LeakConfig.model_validate({"type": "leak", "canaries": ["ZEBRA-7"]}),
                               {"acme": TenantInfo(None, ("ACME-1",)), "globex": TenantInfo(None, ("GLOBEX-2",))})
    d = _RULES["acme"].detectors[0]
    text = "".join(pieces)
    start = min(start, len(text))
    assert d.scan(text, start, final) == _full_pass(d).scan(text, start, final)


_RULES = None


def test_long_text_anchor_search_sees_the_first_and_the_start_position():
    from proxy.leak.rules import TenantInfo, compile_rules
    from proxy.stages.leak import LeakConfig

    d = compile_rules(LeakConfig.model_validate({"type": "leak"}), {"acme": TenantInfo(None, ())})["acme"].detectors[0]
    key = "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE"
    tail = " and then a long clean sentence follows it, with nothing else to find at all."
    for text, start in ((key + tail, 0), ("xy " + key + tail, 3), ("xysk" + tail * 2, 2), ("AKIA" + tail, 0)):
        assert d.scan(text, start, True) == _full_pass(d).scan(text, start, True)
    assert [h.kind for h in d.scan(key + tail, 0, True)[0]] == ["openai_key"]
    assert d.scan("xysk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE" + tail, 2, True) == ([], len(tail) + 42)


# Case-sensitive anchors (base64 characters): searched as written, next to case-insensitive ones that
# may start at the same place (a shorter or longer anchor, word-start or free, the same letters).
MIXED = [
    Alternative("c__key", "c", "key", r"(?<![A-Za-z0-9])(?i:key-)[0-9]{4}", 9, ("key-",), True),
    Alternative("c__ab", "c", "ab", r"(?i:ab)[0-9]{2}", 4, ("ab",), False),
    Alternative("c__nr", "c", "nr", r"(?i:nr)z", 3, ("nr",), False),  # the start of a case-sensitive one
    Alternative("c__qu", "c", "qu", r"(?<![A-Za-z0-9])(?i:qu)!", 3, ("qu",), True),
    Alternative("c__zz", "c", "zz", r"(?<![A-Za-z0-9])(?i:zz)1", 3, ("zz",), True),
    Alternative("c__zzyy", "c", "zzyy", r"(?i:zzyy)2", 5, ("zzyy",), False),  # a longer free one behind a word one
    Alternative("c__dod", "c", "dod", r"(?i:dod)x", 4, ("DOD",), False),
    Alternative("s__nrl", "s", "nrl", r"NrL[0-9]{3}", 6, ("NrL",), False, case_sensitive=True),
    Alternative("s__leu", "s", "leu", r"leU[a-z]{2}", 5, ("leU",), False, case_sensitive=True),
    Alternative("s__qutj", "s", "qutj", r"(?<![A-Za-z0-9])QUtJ[A-Z]{2}", 6, ("QUtJ",), True, case_sensitive=True),
    Alternative("s__dod", "s", "dod", r"dod[0-9]", 4, ("dod",), False, case_sensitive=True),  # same key both ways
    Alternative("s__ab", "s", "ab", r"aB[a-z]{3}", 5, ("aB",), False, case_sensitive=True),
]
_MIXED_PIECES = ["key-", "KEY-", "Key-", "ab", "AB", "aB", "Ab", "nr", "NR", "Nr", "NrL", "nrl", "NRL", "nRl", "leU", "leu", "LEU",
                 "QUtJ", "qutj", "QU", "Qu", "zz", "ZZyy", "zzyy", "ZZYY", "dod", "DOD", "dOd", "1234", "12", "123", "1", "2",
                 "x", "z", "!", "a", "b", "L", "V", "U", "AB", "ABC", "abc", "xyz", " ", "-", "\n", "é", "İ",
                 "Please summarise the quarterly report ", "and then the finance team "]


def _naive(alts, checks=None) -> PatternDetector:
    """The same alternatives without anchors: every pattern runs over the whole text (the reference)."""
    from dataclasses import replace
    return PatternDetector([replace(a, anchors=None) for a in alts], checks)


def test_a_case_sensitive_anchor_is_found_as_written_only():
    d = PatternDetector(MIXED)
    assert [h.kind for h in d.scan("x NrL123 y", 0, final=True)[0]] == ["nrl"]
    assert d.scan("x nrl123 NRL123 nRL123 y", 0, final=True)[0] == []
    assert d.scan("the nr", 0, final=False)[1] == 4  # "nr" begins the case-insensitive "nr"
    assert d.scan("the le", 0, final=False)[1] == 4 and d.scan("the LE", 0, final=False)[1] == 6
    assert d.scan("the Nr", 0, final=False)[1] == 4
    # a case-insensitive anchor at the same place as a longer case-sensitive one: both run
    assert sorted(h.kind for h in d.scan("NrL123 Nrz QUtJAB QU! ZZyy2", 0, final=True)[0]) == ["nr", "nrl", "qu", "qutj", "zzyy"]
    assert [h.kind for h in d.scan("dod1 DODx dodx", 0, final=True)[0]] == ["dod", "dod", "dod"]
    aset = d._set  # keyed lower-cased: a case-sensitive anchor found is one as written
    assert aset.by_anchor["nrl"] == {2, 7} and aset.by_anchor["nr"] == {2, 7}  # "nr" found: "NrL" may follow
    assert aset.by_anchor["dod"] == {6, 10} and aset.by_anchor["qu"] == {3, 9}


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(st.sampled_from(_MIXED_PIECES), max_size=30), start=st.integers(0, 12))
def test_case_sensitive_and_insensitive_anchors_find_what_running_every_pattern_finds(pieces, start):
    """Differential: with the anchor index (case-sensitive anchors as written, case-insensitive ones in any
    case, word-start and free, shared prefixes) a scan gives what running every pattern everywhere gives,
    at every event boundary (each prefix of the text, not final) and at the end (final)."""
    anchored, naive = PatternDetector(MIXED), _naive(MIXED)
    full = _full_pass(anchored)
    text = "".join(pieces)
    start = min(start, len(text))
    for n in range(start, len(text) + 1):
        for final in ((False, True) if n == len(text) else (False,)):
            want = naive.scan(text[:n], start, final)
            assert anchored.scan(text[:n], start, final) == want, (text[:n], start, final)
            assert full.scan(text[:n], start, final) == want, (text[:n], start, final)


def test_the_presence_search_keeps_case_sensitive_anchors_as_written():
    # re2 takes (?-i:...) inside (?i): the long-ASCII-text shortcut finds "NrL" and not "nrl"
    aset = PatternDetector(MIXED)._set
    assert aset.presence is not None
    filler = "Please send the final figures to the team by noon " * 2
    assert aset.presence.search(filler.encode()) is None
    assert aset.presence.search((filler + "NrL").encode()) is not None
    assert aset.presence.search((filler + "LEU lEu xQUtJ").encode()) is None  # "QUtJ" is a word-start anchor
    assert aset.presence.search((filler + "KEY-").encode()) is not None  # case-insensitive as before
    only_cs = PatternDetector([a for a in MIXED if a.case_sensitive])._set
    assert only_cs.presence.search((filler + "nrl NRL lEu qutj dOd").encode()) is None
    assert all(only_cs.presence.search((filler + w).encode()) is not None for w in ("NrL", "leU", " QUtJ", "dod", "aB"))
    assert only_cs.quiet_re.search("nrl leu qutj DOD") is None and only_cs.quiet_re.search("a leU") is not None
    assert only_cs.prefix_re.search("x Nr") is not None and only_cs.prefix_re.search("x nr") is None
    assert only_cs.anchor_re.search("x NrL").group(1) == "NrL" and only_cs.anchor_re.search("x nrl") is None


def test_the_first_character_prefilter_is_a_superset():
    from proxy.leak.pattern import _prefilter

    pre = re.compile(_prefilter({(False, True): {"key-", "İd"}, (False, False): {"<", "\\x"}, (True, True): {"QUtJ"},
                                 (True, False): {"NrL", "leU", "9x"}}), re.I)
    for c in "kKİiI<\\QNl9\u212a\u017fé":
        assert pre.match(c), c
    for c in "abnqLu8 -":
        assert not pre.match(c), c
    # without any cased case-insensitive first character, non-ASCII text is not let through
    assert not re.compile(_prefilter({(False, False): {"<"}, (True, False): {"NrL"}}), re.I).match("é")


def test_a_word_start_anchor_after_a_letter_that_case_folds_to_ascii_is_still_found():
    # Under re.I, [A-Za-z] also matches "İ", "ſ" and the Kelvin sign: the anchors' word-start test used to
    # count them as letters, so a key right after one was never looked at (the key's own look-behind
    # takes them as non-ASCII, so it matches there).
    from proxy.leak.rules import TenantInfo, compile_rules
    from proxy.stages.leak import LeakConfig

    rules = compile_rules(LeakConfig.model_validate({"type": "leak"}), {"acme": TenantInfo(None, ())})["acme"]
    for before in ("İ", "ſ", "\u212a", "é", "ß"):
        for key in ("sk-proj-abcdefghijklmnopqrstuvwxyzABCDEFGH1234", "AKIAIOSFODNN7EXAMPLE"):
            out = rules.scanner().whole(f"see {before}{key} ok")
            out = out if isinstance(out, str) else out.text
            assert out == f"see {before}[REDACTED:secret] ok", (before, out)
    d = PatternDetector(MIXED)
    assert [h.kind for h in d.scan("İkey-1234", 0, final=True)[0]] == ["key"] and d.scan("İke", 0, False)[1] == 1
    assert d.scan("Kke", 0, False)[1] == 3  # an ASCII letter before: not a word start
