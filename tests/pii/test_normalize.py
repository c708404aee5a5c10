from proxy.pii.normalize import normalize, to_original


def test_ascii_is_left_alone():
    assert normalize("plain 4111 text") is None
    assert normalize("café au lait") is None  # non-ASCII, but nothing to undo


def test_invisible_dropped_fullwidth_and_foreign_digits_folded_with_a_map_back():
    text = "x\u200bＡ４٤\ufeffz"
    norm, index = normalize(text)
    assert norm == "xA44z"
    assert [text[i] for i in index] == ["x", "Ａ", "４", "٤", "z"]
    assert to_original(index, 1, 4) == (2, 5)
