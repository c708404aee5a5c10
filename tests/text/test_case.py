import sys

from proxy.text.case import lower_in_place


def test_ascii_and_ordinary_text_is_lower():
    for s in ("Hello WORLD", "Straße ÉCOLE", "ΣΊΣΥΦΟΣ", ""):
        assert lower_in_place(s) == s.lower()


def test_dotted_capital_i_keeps_the_offsets():
    s = "İSTANBUL İLETİŞİM phone"
    low = lower_in_place(s)
    assert len(low) == len(s) and low == "istanbul iletişim phone"
    assert low.index("phone") == s.index("phone")


def test_every_character_keeps_its_offset():
    for c in map(chr, range(sys.maxunicode + 1)):
        if 0xD800 <= ord(c) <= 0xDFFF:
            continue
        assert len(lower_in_place("a" + c + "b")) == 3, hex(ord(c))
