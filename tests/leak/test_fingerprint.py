import pytest
from hypothesis import given, settings, strategies as st

from proxy.leak.fingerprint import FingerprintDetector, PromptFingerprint, words_in

PROMPT = ("You are Acme's helpful support assistant. Never reveal internal pricing rules. Always answer "
          "politely and offer the customer a discount code when they complain about shipping delays.")


def det(**kw) -> FingerprintDetector:
    return FingerprintDetector([PromptFingerprint(PROMPT, **kw)])


def leaked(text: str, **kw) -> list[str]:
    return [text[h.start:h.end] for h in det(**kw).scan(text, 0, final=True)[0]]


def test_words_are_casefolded_and_markup_free():
    assert [w for _, _, w in words_in("**You** are\n\n# ACME's  `bot`")] == ["you", "are", "acme", "s", "bot"]


def test_verbatim_copy_is_a_leak():
    out = leaked("Sure. " + PROMPT + " Anything else?")
    assert len(out) == 1 and out[0].startswith("You are") and out[0].endswith("delays")


def test_reformatted_copy_is_a_leak():
    text = "My rules:\n\n> **you are acme's HELPFUL support assistant** —\n> - never reveal internal pricing rules;\n> - always answer politely"
    assert len(leaked(text)) == 1


def test_a_few_shared_words_are_not():
    assert leaked("You are welcome! Our support assistant can help with shipping delays and pricing.") == []


def test_one_changed_word_does_not_hide_a_long_copy():
    assert len(leaked(PROMPT.replace("helpful", "friendly"), window=12)) == 1


def test_threshold_decides_how_much_editing_still_counts():
    words = PROMPT.split()
    edited = " ".join("zzz" if i % 10 == 9 else w for i, w in enumerate(words))  # half the shingles survive
    assert leaked(edited, threshold=0.9, window=12) == []
    assert len(leaked(edited, threshold=0.4, window=12)) == 1


def test_short_prompt_uses_whole_prompt_as_window():
    fp = PromptFingerprint("Never mention Project Bluebird to users.")
    assert fp.window == 2 and fp.need == 2
    d = FingerprintDetector([fp])
    assert len(d.scan("ok: never mention project bluebird to users!", 0, final=True)[0]) == 1


def test_too_short_prompt_is_refused():
    with pytest.raises(ValueError):
        PromptFingerprint("Be brief.")


def test_hold_covers_a_growing_copy_and_releases_when_it_breaks():
    d = det()
    text = "Hello! You are Acme's helpful"
    hits, hold = d.scan(text, 0, final=False)
    assert hits == [] and text[hold:] == "You are Acme's helpful"
    text2 = text + " friend, nice to meet you. Let us talk about the weather today and more"
    hits, hold = d.scan(text2, 0, final=False)
    assert hits == [] and hold > text2.index("weather")


def test_clean_word_at_the_end_is_not_held():
    assert det().scan("Hello there", 0, final=False) == ([], 11)


def test_max_span_is_bounded():
    assert 0 < det().max_span < 5000


# The detector's shortcuts (ASCII fast path, "no prompt word", "no run of prompt words") must
# give exactly what the per-prompt general scan gives, for every buffer, offset and end flag.
_VOCAB = ["you", "are", "acme", "s", "support", "never", "reveal", "rules", "the", "a", "in", "one", "code", "42"]
_OTHER = ["quarterly", "report", "sentence", "straße", "İd", "x", "ab", "supp", "rev"]
_SEP = [" ", "  ", "\n", ", ", ". ", "**", "# ", "'", "-", "_", "`", "\t", "\x00", "\x1f", "+", "\x7f"]


def _reference(prints, text: str, start: int, final: bool):
    n = len(text)
    words = words_in(text, start)
    if not words:
        return [], n
    open_word = not final and text.endswith(text[words[-1][0]:words[-1][1]])
    spans, hold = [], n
    for fp in prints:
        found, h = fp.scan(words, open_word, n, final)
        spans += found
        hold = min(hold, h)
    return spans, hold


@settings(max_examples=400, deadline=None)
@given(prompts=st.lists(st.tuples(st.lists(st.sampled_from(_VOCAB), min_size=4, max_size=24), st.integers(2, 6),
                                  st.integers(1, 14), st.sampled_from([0.5, 0.75, 0.9, 1.0])), min_size=1, max_size=2),
       parts=st.lists(st.tuples(st.sampled_from(_VOCAB + _OTHER), st.sampled_from(_SEP)), max_size=30),
       copy=st.tuples(st.integers(0, 30), st.integers(0, 24), st.integers(0, 24)),
       cut=st.integers(0, 40), start=st.integers(0, 12), final=st.booleans(), upper=st.booleans())
def test_fast_paths_equal_the_general_scan(prompts, parts, copy, cut, start, final, upper):
    prints = [PromptFingerprint(" ".join(ws), shingle=k, window=w, threshold=t) for ws, k, w, t in prompts]
    at, lo, hi = copy  # a copied run of the first prompt's words, planted among the others
    parts[at:at] = [(w, " ") for w in prompts[0][0][lo:lo + hi]]
    text = "".join(w + sep for w, sep in parts)
    text = text[:len(text) - cut] if cut < len(text) else text  # often ends inside a word
    text = text.upper() if upper else text
    start = min(start, len(text))
    hits, hold = FingerprintDetector(prints).scan(text, start, final)
    assert ([(h.start, h.end) for h in hits], hold) == _reference(prints, text, start, final)


# The ASCII word split (FingerprintDetector.scan and its shortcut) against its definition: _WORD
# over the lowered text.
@settings(max_examples=600, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_ascii_word_split_is_the_word_regex(text):
    from proxy.leak.fingerprint import _ASCII_WORDS, _WORD

    assert text.translate(_ASCII_WORDS).split() == _WORD.findall(text.lower())


def test_ascii_word_split_for_every_pair_of_ascii_characters():
    from proxy.leak.fingerprint import _ASCII_WORDS, _WORD

    for a in range(128):
        for b in range(128):
            text = chr(a) + "x" + chr(b)
            assert text.translate(_ASCII_WORDS).split() == _WORD.findall(text.lower())



def test_ascii_byte_split_for_every_pair_of_ascii_characters():
    from proxy.leak.fingerprint import _ASCII_BYTES, _WORD

    for a in range(128):
        for b in range(128):
            text = chr(a) + "x" + chr(b)
            assert text.encode("ascii").translate(_ASCII_BYTES).split() == [w.encode() for w in _WORD.findall(text.lower())]


@pytest.mark.parametrize("final", [True, False])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_a_run_of_exactly_one_shingle_is_judged(k, final):
    """A run of exactly `shingle` prompt words among other words is a leak when one shingle fills
    the window: the fast paths must hand it to the general scan, not stop one word short."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    prints = [PromptFingerprint(" ".join(words), shingle=k, window=1, threshold=1.0)]
    for text in ("zz " + " ".join(words[1:1 + k]) + " zz.", "ZZ, " + " ".join(words[:k]).upper() + "!"):
        hits, hold = FingerprintDetector(prints).scan(text, 0, final)
        assert ([(h.start, h.end) for h in hits], hold) == _reference(prints, text, 0, final)
        assert len(hits) == 1
