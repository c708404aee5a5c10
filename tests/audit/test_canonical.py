from __future__ import annotations

from proxy.audit.canonical import UNSEALED, canonical, entry_hash


def test_rfc8785_key_order_and_numbers():
    # RFC 8785 sorts by UTF-16 code units and prints numbers as ECMAScript does
    # (U+1F600 is D83D DE00 in UTF-16, so it sorts before U+E000 although its code point is larger)
    assert canonical({"b": 1, "a": [1.0, 1e21, 0.000001, "é"], "\ue000": 0, "\U0001F600": 0}) == \
        '{"a":[1,1e+21,0.000001,"é"],"b":1,"\U0001F600":0,"\ue000":0}'.encode()


def test_entry_hash_ignores_only_hash_and_sig():
    e = {"seq": 1, "x": "y"}
    h = entry_hash(e)
    assert entry_hash({**e, "hash": "h", "sig": "s"}) == h
    assert entry_hash({**e, "x": "z"}) != h
    assert entry_hash({"x": "y", "seq": 1}) == h  # member order does not matter
    assert set(UNSEALED) == {"hash", "sig"}
