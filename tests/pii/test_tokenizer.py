import os
from collections import Counter

from proxy.pii.detector import Span
from proxy.pii.tokenizer import tokenize
from proxy.pii.vault import Vault


def test_replaces_spans_in_order_and_counts():
    text = "a bob@x.com b 555-0134-222 c bob@x.com"
    spans = [Span(2, 11, "EMAIL_ADDRESS", 1.0), Span(14, 26, "PHONE_NUMBER", 0.4), Span(29, 38, "EMAIL_ADDRESS", 1.0)]
    counts = Counter()
    out = tokenize(text, spans, Vault(os.urandom(32)), counts)
    assert out == "a <EMAIL_ADDRESS_1> b <PHONE_NUMBER_1> c <EMAIL_ADDRESS_1>"
    assert counts == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}


def test_no_spans_returns_the_same_text():
    text = "nothing here"
    assert tokenize(text, [], Vault(os.urandom(32))) is text
