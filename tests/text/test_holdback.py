"""Hold back only the suffix that could still become a match."""

from hypothesis import given, settings, strategies as st

from proxy.text.holdback import HoldBack, LiteralPrefixes

TOKENS = ["<EMAIL_ADDRESS_1>", "<PHONE_NUMBER_12>"]


def test_releases_everything_that_cannot_start_a_token():
    lp = LiteralPrefixes(TOKENS)
    hb = HoldBack(lp.hold_from, lp.max_len)
    assert hb.push("hello wor") == "hello wor"
    assert hb.push("ld <EMA") == "ld "
    assert hb.held == "<EMA"
    assert hb.push("IL_ADDRESS_1> bye") == "<EMAIL_ADDRESS_1> bye"
    assert hb.flush() == ""


def test_a_lone_angle_bracket_is_held_then_released():
    lp = LiteralPrefixes(TOKENS)
    hb = HoldBack(lp.hold_from, lp.max_len)
    assert hb.push("a <") == "a "
    assert hb.push(" b") == "< b"


def test_flush_returns_a_dangling_prefix_as_literal_text():
    lp = LiteralPrefixes(TOKENS)
    hb = HoldBack(lp.hold_from, lp.max_len)
    hb.push("end <PHONE_NU")
    assert hb.flush() == "<PHONE_NU"


def test_case_insensitive_prefixes():
    lp = LiteralPrefixes(["<Secret>"], case_insensitive=True)
    assert lp.hold_from("abc <sEC") == 4


def test_max_hold_bounds_memory():
    hb = HoldBack(lambda text: 0, max_hold=8)  # a detector that would hold everything
    out = hb.push("x" * 100)
    assert len(hb.held) == 8 and len(out) == 92


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab<>EMAIL_DRS1 ", max_size=80), st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=30))
def test_output_is_the_input_in_order_for_any_split(text, sizes):
    lp = LiteralPrefixes(TOKENS)
    hb = HoldBack(lp.hold_from, lp.max_len)
    out, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        out.append(hb.push(text[i:i + n]))
        i += n
        k += 1
    out.append(hb.flush())
    assert "".join(out) == text
    # at every push, what was released never stops inside a token of the text
    cut_points = set()
    total = 0
    for piece in out[:-1]:
        total += len(piece)
        cut_points.add(total)
    for tok in TOKENS:
        start = text.find(tok)
        while start != -1:
            assert not any(start < c < start + len(tok) for c in cut_points)
            start = text.find(tok, start + 1)


def test_case_insensitive_hold_is_placed_in_the_original_text_after_a_dotted_capital_i():
    # "İ".lower() is two code points: an index into the lower-cased tail was one too far per "İ",
    # so the literal's first characters were released and the rest held (then never matched).
    lp = LiteralPrefixes(["canary-7731"], case_insensitive=True)
    assert lp.hold_from("xİcan") == 2 and lp.hold_from("İİİCANARY-77") == 3
    lit = "canary-7731"
    text = f"see İİİ{lit} ok"
    for k in range(len(text) + 1):
        hb = HoldBack(lp.hold_from, lp.max_len)
        first = hb.push(text[:k])
        assert first + hb.held == text[:k]
        assert not any(first.endswith(lit[:j]) for j in range(1, len(lit))), (k, first)  # never a cut literal
