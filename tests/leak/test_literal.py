import regex
from hypothesis import given, strategies as st

from proxy.leak.literal import trie_pattern, word_literals


@given(st.lists(st.text(alphabet="ab.-1", min_size=1, max_size=6), min_size=1, max_size=12), st.text(alphabet="ab.-1", max_size=7))
def test_trie_matches_exactly_the_literals(lits, probe):
    p = regex.compile("(?:" + trie_pattern(lits) + r")\Z")
    assert all(p.match(lit) for lit in lits)
    assert bool(p.match(probe)) == (probe in set(lits))


def test_empty_set_never_matches():
    assert regex.search(trie_pattern([]), "anything") is None


def test_word_literals_are_case_insensitive_and_bounded():
    p = word_literals(["acme", "ACME-ACCT-0001", "acme.com"])
    found = [m.group() for m in p.finditer("Acme, acmex, xacme, ACME-acct-0001 and mail@acme.com")]
    assert found == ["Acme", "ACME-acct-0001", "acme.com"]


@given(st.lists(st.text(alphabet="ab-", min_size=1, max_size=5), min_size=1, max_size=8), st.text(alphabet="ab-", max_size=6))
def test_prefix_trie_matches_every_non_empty_prefix(lits, probe):
    import re

    p = re.compile("(?:" + trie_pattern(lits, prefixes=True, escape=re.escape) + r")\Z")
    prefixes = {lit[:k] for lit in lits for k in range(1, len(lit) + 1)}
    assert bool(p.match(probe)) == (probe in prefixes)


def test_word_literals_find_a_literal_whose_case_folding_changes_its_length_as_written_and_folded():
    # regex's IGNORECASE is simple case folding: the case-folded "strasse" alone does not find "Straße".
    from proxy.leak.literal import literal_forms

    p = word_literals(["Straße-Kto", "İzmir-55", "ﬁnch-1"])
    for text in ("Straße-Kto", "STRAßE-KTO", "straße-kto", "STRASSE-KTO", "strasse-kto", "İzmir-55", "İZMIR-55", "ﬁnch-1", "FINCH-1"):
        m = p.search(f"see {text}.")
        assert m is not None and m.group() == text, text
    assert p.search("xStraße-Kto") is None and p.search("Straße-Kto9") is None
    assert literal_forms(["Straße", "", "abc"]) == sorted({"Straße", "straße", "strasse", "abc"})


def test_ascii_literals_have_one_form():
    from proxy.leak.literal import literal_forms

    assert literal_forms(["ACME-ACCT-0001", "acme-acct-0001", "Globex"]) == ["acme-acct-0001", "globex"]
    assert literal_forms(["İd"]) == sorted({"İd", "i̇d"}) and literal_forms(["ﬁx"]) == sorted({"ﬁx", "fix"})
