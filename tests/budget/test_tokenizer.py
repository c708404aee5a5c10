"""Offline tokenizer: the shipped files load without network, hashes are checked, special tokens are text."""

from __future__ import annotations

import shutil

import pytest
import tiktoken.load

from proxy.budget.tokenizer import ENCODINGS, EncodingFileError, TokenCounter, load_encoding

COUNTER = TokenCounter()


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_shipped_encodings_match_known_token_ids(name):
    enc = COUNTER._encoding(name)
    # reference ids from OpenAI's published encodings
    expected = {"o200k_base": [13225, 2375], "cl100k_base": [9906, 1917]}[name]
    assert enc.encode_ordinary("Hello world") == expected
    assert enc.n_vocab > 100_000


def test_special_token_text_is_counted_not_raised():
    text = "ignore <|endoftext|> and <|endofprompt|>"
    assert COUNTER.count(text, "o200k_base") > 5
    with pytest.raises(ValueError):
        COUNTER._encoding("o200k_base").encode(text)  # what plain encode would do


def test_unknown_encoding_counts_utf8_bytes_as_an_upper_bound():
    text = "naïve café – 東京"
    assert COUNTER.count(text, "bytes") == len(text.encode())
    assert COUNTER.count(text, "bytes") >= COUNTER.count(text, "o200k_base")
    assert COUNTER.count("", "o200k_base") == 0
    assert COUNTER.count_many(["a b", "c"], "mystery") == 4


def test_a_tampered_file_is_refused(tmp_path):
    src = load_encoding.__globals__["_DIR"]
    for filename, *_ in ENCODINGS.values():
        shutil.copy(src / filename, tmp_path / filename)
    with open(tmp_path / "cl100k_base.tiktoken", "ab") as f:
        f.write(b"IQ== 100999\n")
    with pytest.raises(EncodingFileError, match="sha256"):
        load_encoding("cl100k_base", tmp_path)
    with pytest.raises(EncodingFileError, match="missing"):
        load_encoding("o200k_base", tmp_path / "nowhere")


def test_no_network_or_cache_dir_is_touched(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tiktoken.load, "read_file", lambda *_: pytest.fail("tiktoken tried to fetch a file"))
    enc = load_encoding("cl100k_base")
    assert enc.name == "cl100k_base" and not (tmp_path / "cache").exists()


def test_remembered_counts_are_exact_and_the_cache_stays_bounded(monkeypatch):
    import random
    counter = TokenCounter()
    monkeypatch.setattr(counter, "CACHE_MAX_CHARS", 20_000)
    rnd = random.Random(3)
    words = ["refund", "ACME-ACCT-0001", "héllo", "数据", "🙂", " ", "\n", "<|endoftext|>", "4242 4242"]
    texts = ["".join(rnd.choice(words) for _ in range(rnd.randint(60, 600))) for _ in range(40)]
    enc = COUNTER._encoding("o200k_base")
    for t in texts:
        for _ in range(2):  # the second call is a hit whenever the text was small enough to keep
            assert counter.count(t, "o200k_base") == len(enc.encode_ordinary(t))
            assert counter.count(t, "cl100k_base") == len(COUNTER._encoding("cl100k_base").encode_ordinary(t))
    assert counter.cache_hits > 0
    assert counter._cache_chars <= 20_000 and sum(len(t) for _, t in counter._cache) == counter._cache_chars
    short = "hi there"  # below CACHE_MIN_CHARS: counted, not kept
    assert counter.count(short, "o200k_base") == 2 and ("o200k_base", short) not in counter._cache


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_the_python_copy_of_the_ranks_is_dropped_and_tokens_are_unchanged(name):
    import tiktoken
    from binascii import a2b_base64
    enc = load_encoding(name)
    assert enc._mergeable_ranks is None  # ~27 MB of RSS for o200k_base; the Rust core keeps its own
    filename, _, pattern, special = ENCODINGS[name]
    data = (load_encoding.__globals__["_DIR"] / filename).read_bytes()
    ranks = {a2b_base64(t): int(r) for t, _, r in (line.partition(b" ") for line in data.split(b"\n") if line)}
    reference = tiktoken.Encoding(name=name + "-ref", pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)
    text = "Refunds above 500 EUR need approval code RX-42. naïve café – 東京 🙂 <|endoftext|>\n\tdef f(x): return x**2"
    assert enc.encode_ordinary(text) == reference.encode_ordinary(text)
    assert enc.decode(enc.encode_ordinary(text)) == text
