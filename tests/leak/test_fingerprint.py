import pytest

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
