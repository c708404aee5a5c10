from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.audit.canonical import UNSEALED, canonical, entry_hash, es6_number


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


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**53 + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(_json)
def test_fast_path_matches_the_reference(obj):
    assert canonical(obj) == rfc8785.dumps(obj)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_es6_numbers(f):
    assert es6_number(f) == rfc8785.dumps(f).decode()
