"""Restore: any split of the stream equals the whole-text restore; only issued tokens restore."""

import json
import os

from hypothesis import given, settings, strategies as st

from proxy.pii.restorer import Restorer
from proxy.pii.vault import Vault

KEY = os.urandom(32)


def vault_with(*pairs, reserved=""):
    v = Vault(KEY, reserved)
    toks = [v.token_for(e, val) for e, val in pairs]
    return v, toks


def stream(restorer, pieces):
    rw = restorer.rewriter()
    return "".join(rw.feed(p) for p in pieces) + rw.finish()


def test_whole_text_restores_issued_tokens():
    v, (t1, t2) = vault_with(("EMAIL_ADDRESS", "bob@example.com"), ("PHONE_NUMBER", "+1 415 555 0134"))
    assert (t1, t2) == ("<EMAIL_ADDRESS_1>", "<PHONE_NUMBER_1>")
    r = Restorer(v)
    assert r.restore_text(f"Mail {t1} or call {t2}.") == "Mail bob@example.com or call +1 415 555 0134."
    assert dict(r.restored) == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}


def test_mangled_forms_restore_where_unambiguous():
    v, _ = vault_with(("EMAIL_ADDRESS", "bob@example.com"))
    r = Restorer(v)
    for form in ("<email_address_1>", "EMAIL_ADDRESS_1", "<EMAIL_ADDRESS_1", "EMAIL_ADDRESS_1>", "Email_Address_1"):
        assert r.restore_text(f"to {form}, thanks") == "to bob@example.com, thanks", form


def test_lookalikes_stay_literal():
    v, _ = vault_with(("EMAIL_ADDRESS", "bob@example.com"))
    r = Restorer(v)
    for text in ("EMAIL_ADDRESS_12", "<EMAIL_ADDRESS_2>", "xEMAIL_ADDRESS_1", "EMAIL_ADDRESS_1x", "MY_EMAIL_ADDRESS_1",
                 "EMAIL_ADDRESS_1_2", "<PHONE_NUMBER_1>"):
        assert r.restore_text(text) == text, text
    assert not r.restored


def test_exact_token_glued_to_a_word_still_restores():
    v, _ = vault_with(("EMAIL_ADDRESS", "bob@example.com"))
    assert Restorer(v).restore_text("mail:<EMAIL_ADDRESS_1>!") == "mail:bob@example.com!"


def test_token_from_another_vault_never_restores():
    a, _ = vault_with(("EMAIL_ADDRESS", "alice@tenant-a.com"))
    b = Vault(os.urandom(32), "")  # another tenant / request: issued nothing
    assert Restorer(b).restore_text("<EMAIL_ADDRESS_1>") == "<EMAIL_ADDRESS_1>"
    # A forged token in the request's own text is reserved: ours gets the next number.
    c, toks = vault_with(("EMAIL_ADDRESS", "carol@example.com"), reserved="please echo <EMAIL_ADDRESS_1>")
    assert toks == ["<EMAIL_ADDRESS_2>"]
    assert Restorer(c).restore_text("<EMAIL_ADDRESS_1> <EMAIL_ADDRESS_2>") == "<EMAIL_ADDRESS_1> carol@example.com"


def test_dangling_partial_token_is_flushed_as_written():
    v, _ = vault_with(("EMAIL_ADDRESS", "bob@example.com"))
    r = Restorer(v)
    assert stream(r, ["see <EMAIL_", "ADDR"]) == "see <EMAIL_ADDR"
    assert stream(r, ["see <EMAIL_ADDRESS_1"]) == "see bob@example.com"  # complete core, missing '>'


def test_holds_only_a_possible_token_suffix():
    v, _ = vault_with(("EMAIL_ADDRESS", "bob@example.com"))
    rw = Restorer(v).rewriter()
    assert rw.feed("Hello there, ") == "Hello there, "  # nothing that could start a token: no delay
    assert rw.feed("write to <EMA") == "write to "
    assert rw.feed("IL_ADDRESS_1> now") == "bob@example.com now"
    assert rw.finish() == ""


def test_tool_arguments_get_json_escaped_values():
    v, _ = vault_with(("CUSTOM_ID", 'a"b\\c'))
    r = Restorer(v)
    rw = r.rewriter((0, "tool_arguments", 0))
    out = rw.feed('{"id": "<CUSTOM_ID_1>"}') + rw.finish()
    assert json.loads(out) == {"id": 'a"b\\c'}


VALUES = [("EMAIL_ADDRESS", "bob@example.com"), ("PHONE_NUMBER", "+44 7700 900123"), ("US_SSN", "123-45-6789"),
          ("CREDIT_CARD", "4111 1111 1111 1111"), ("EMAIL_ADDRESS", "ann@example.org")]
FORMS = ["<{c}>", "{c}", "<{lc}>", "{c}>", "<{c}"]
filler = st.text(alphabet="ab <>_1EMAIL xyz\n.,", max_size=12)


@st.composite
def answers(draw):
    """A model answer mixing issued tokens (some mangled), lookalikes and noise."""
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        parts.append(draw(filler))
        i = draw(st.integers(0, len(VALUES) + 1))
        if i < len(VALUES):
            core = {0: "EMAIL_ADDRESS_1", 1: "PHONE_NUMBER_1", 2: "US_SSN_1", 3: "CREDIT_CARD_1", 4: "EMAIL_ADDRESS_2"}[i]
            parts.append(draw(st.sampled_from(FORMS)).format(c=core, lc=core.lower()))
        else:
            parts.append(draw(st.sampled_from(["<EMAIL_ADDRESS_9>", "EMAIL_ADDRESS_12", "<US_SSN_", "PHONE_NUM"])))
    return "".join(parts)


@settings(max_examples=120, deadline=None)
@given(answers(), st.data())
def test_any_split_of_the_stream_equals_the_whole_restore(text, data):
    v, _ = vault_with(*VALUES)
    whole = Restorer(v).restore_text(text)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(text)), max_size=8))))
    pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    assert stream(Restorer(v), pieces) == whole
    assert stream(Restorer(v), list(text)) == whole  # one character per event


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(range(len(VALUES))), min_size=1, max_size=6), st.lists(filler, min_size=7, max_size=7), st.data())
def test_exact_tokens_always_come_back_whatever_the_split(picks, fills, data):
    v, toks = vault_with(*VALUES)
    text = "".join(f"{fills[k]} {toks[i]} " for k, i in enumerate(picks))
    expected = "".join(f"{fills[k]} {VALUES[i][1]} " for k, i in enumerate(picks))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(text)), max_size=10))))
    pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    out = stream(Restorer(v), pieces)
    assert out == expected
    assert not any(t in out for t in toks)


CORE_NAMES = st.sampled_from(["EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "E", "EMAIL"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(CORE_NAMES, st.integers(1, 12)), min_size=1, max_size=6),
       st.lists(st.text(alphabet="<>_emailpsn0123456789 ", min_size=1, max_size=20), max_size=30))
def test_prefix_check_equals_a_table_of_every_proper_prefix(cores, probes):
    """The bisect check against the sorted literals decides like the full prefix table it replaced."""
    v = Vault(KEY)
    for name, n in cores:
        v._entries[f"{name}_{n}"] = (name, "x", b"")  # only the cores matter to the prefix check
    r = Restorer(v)
    literals = [f"<{c.lower()}>" for c in v.cores()] + [f"{c.lower()}>" for c in v.cores()]
    table = {lit[:k] for lit in literals for k in range(1, len(lit))}
    for lit in literals:  # every prefix of every literal, the literals themselves, and noise
        for k in range(1, len(lit) + 2):
            assert r._is_prefix(lit[:k]) == (lit[:k] in table), lit[:k]
    for p in probes:
        assert r._is_prefix(p) == (p in table), p


# --- the skip-ahead token search against TOKEN itself (differential) ---

TOKENISH = "<>_aeEMAILZz0123456789 .,-\n\u00e9"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=TOKENISH, max_size=200), st.integers(0, 200))
def test_skip_ahead_search_finds_what_token_finds(text, pos):
    """restorer._search / _finditer = TOKEN.search / TOKEN.finditer from any position, look-behind included."""
    from proxy.pii.restorer import TOKEN, _finditer, _search
    pos = min(pos, len(text))
    a, b = _search(text, pos), TOKEN.search(text, pos)
    assert (a and (a.span(), a.groups())) == (b and (b.span(), b.groups()))
    assert [(m.span(), m.groups()) for m in _finditer(text, pos)] == [(m.span(), m.groups()) for m in TOKEN.finditer(text, pos)]


def test_skip_ahead_search_edges():
    from proxy.pii.restorer import TOKEN, _LEAD, _finditer
    long_core = "A" * 63 + "_1"  # the longest group 2 whose "_" + digit sits farthest from its start
    cases = ["<" + long_core + ">", "x <" + long_core + ">", "A" * 64 + "_1", "A_1_2_3 B_22", "_1" * 40,
             "abc EMAIL_ADDRESS_1x EMAIL_ADDRESS_1 <EMAIL_ADDRESS_1", "word" * 30 + " <US_SSN_1>", "a_1" + "b" * (_LEAD + 3) + "_2"]
    for text in cases:
        for pos in range(len(text) + 1):
            assert [m.span() for m in _finditer(text, pos)] == [m.span() for m in TOKEN.finditer(text, pos)], (text, pos)


def test_tokens_next_to_characters_whose_case_mapping_changes_length_restore_at_every_split():
    # The hold-back lower-cases a tail of the buffer: "İ".lower() is two code points. The held suffix
    # is a prefix of an (ASCII) token, so the offset it maps back to stays exact; checked, not assumed.
    v, (t1,) = vault_with(("EMAIL_ADDRESS", "bob@example.com"))
    for text in (f"İİ{t1}İ", "İİİ EMAIL_ADDRESS_1 İ", f"ß{t1}ﬁ", "İEMAIL_ADDRESS_1", "\u212aEMAIL_ADDRESS_1İ"):
        want = Restorer(v).restore_text(text)
        for k in range(len(text) + 1):
            for j in range(k, len(text) + 1):
                assert stream(Restorer(v), [text[:k], text[k:j], text[j:]]) == want, (text, k, j)
    assert Restorer(v).restore_text(f"İİ{t1}İ") == "İİbob@example.comİ"
    assert Restorer(v).restore_text("İİİ EMAIL_ADDRESS_1 İ") == "İİİ bob@example.com İ"
