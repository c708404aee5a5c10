import regex

from proxy.leak.pattern import PatternDetector


def det(pat: str, **kw) -> PatternDetector:
    return PatternDetector("t", regex.compile(pat), 64, **kw)


def test_complete_match_is_a_hit():
    hits, hold = det(r"abc").scan("xx abc yy", 0, final=False)
    assert [(h.start, h.end) for h in hits] == [(3, 6)]
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
    hits, hold = det(r"abcd|b").scan("xabc", 0, final=False)
    assert hold == 1


def test_start_offset_keeps_lookbehind_context():
    d = det(r"(?<![a-z])key")
    assert d.scan("monkey", 3, final=True)[0] == []
    assert len(d.scan("a key", 2, final=True)[0]) == 1


def test_kind_validate_and_keep():
    d = det(r"(?P<num>[0-9]{3})|(?P<word>[a-z]{3})", kinds=("num", "word"),
            validate={"num": lambda m: m.group() != "000"}, keep=lambda m: m.group() != "zzz")
    hits, _ = d.scan("000 123 abc zzz", 0, final=True)
    assert [(h.kind, h.start) for h in hits] == [("num", 4), ("word", 8)]
