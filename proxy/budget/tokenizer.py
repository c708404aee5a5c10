"""Token counting that works offline.

tiktoken downloads its BPE files on first use; Ramparts ships o200k_base and
cl100k_base in `proxy/budget/tiktoken/` and builds `tiktoken.Encoding` straight
from those files after checking the sha256 pinned here (the same hashes tiktoken
pins in its own source). Nothing is fetched, nothing is written to a cache dir.

`encode_ordinary` is used on purpose: plain `encode` raises on special-token text
such as "<|endoftext|>" in a user message. For the `bytes` encoding (models with no
known tokenizer) the UTF-8 byte count is used: BPE never yields more tokens than
bytes, so it is an upper bound and never under-reserves.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from binascii import a2b_base64
from pathlib import Path

import tiktoken

_DIR = Path(__file__).with_name("tiktoken")

_O200K_PAT = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
_CL100K_PAT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""

# name -> (file, sha256, pattern, special tokens); hashes as pinned in tiktoken_ext.openai_public
ENCODINGS: dict[str, tuple[str, str, str, dict[str, int]]] = {
    "o200k_base": ("o200k_base.tiktoken", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
                   _O200K_PAT, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
    "cl100k_base": ("cl100k_base.tiktoken", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                    _CL100K_PAT, {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                                  "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}),
}


class EncodingFileError(RuntimeError):
    """A shipped encoding file is missing or does not match its pinned sha256."""


def load_encoding(name: str, directory: Path = _DIR) -> tiktoken.Encoding:
    """Build one encoding from the shipped file; refuses a file whose sha256 differs."""
    filename, sha256, pattern, special = ENCODINGS[name]
    try:
        data = (directory / filename).read_bytes()
    except OSError as e:
        raise EncodingFileError(f"tiktoken file for {name} is missing: {e}") from e
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EncodingFileError(f"tiktoken file for {name} does not match its pinned sha256")
    ranks = {}
    for line in data.split(b"\n"):
        if line:
            tok, _, rank = line.partition(b" ")
            ranks[a2b_base64(tok)] = int(rank)
    enc = tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)
    # The Rust core (CoreBPE) keeps its own copy of the ranks; the Python dict tiktoken also keeps
    # is only read to pickle the Encoding, which Ramparts never does. Dropping it returns ~27 MB of
    # RSS for o200k_base (74 -> 47 MB measured), ~15 MB for cl100k_base. Counting is unchanged
    # (tests/budget/test_tokenizer.py pins token ids and checks the attribute still exists).
    if getattr(enc, "_mergeable_ranks", None) is ranks:
        enc._mergeable_ranks = None
    return enc


class TokenCounter:
    """Counts tokens per encoding name; each encoding is loaded once, on first use.

    Owned by a stage (no module-level cache): loading o200k_base takes ~0.3 s, so a
    stage calls `warm()` from start() rather than on the first request.

    Counts of long texts are remembered (LRU, bounded by total characters): system
    prompts and the history a chat resends every turn are the same strings again and
    again, and a 2 KB text costs ~60 µs to tokenize but ~0.2 µs to look up. The key is
    the text itself (compared in full on a hit), so a hit is exact, never a guess.
    """

    CACHE_MIN_CHARS = 256  # shorter texts tokenize in a few µs: not worth a slot
    CACHE_MAX_CHARS = 2_000_000  # total characters kept as keys (~2-8 MB)

    def __init__(self, directory: Path = _DIR) -> None:
        self._dir = directory
        self._encodings: dict[str, tiktoken.Encoding] = {}
        self._lock = threading.Lock()  # counting may run in worker threads for large prompts
        self._cache: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._cache_chars = 0
        self._cache_lock = threading.Lock()
        self.cache_hits = 0  # for tests and the bench

    def warm(self, names: set[str] | frozenset[str]) -> None:
        for name in names:
            if name in ENCODINGS:
                self._encoding(name)

    def _encoding(self, name: str) -> tiktoken.Encoding:
        enc = self._encodings.get(name)
        if enc is None:
            with self._lock:
                enc = self._encodings.get(name)
                if enc is None:
                    enc = self._encodings[name] = load_encoding(name, self._dir)
        return enc

    def count(self, text: str, encoding: str) -> int:
        if not text:
            return 0
        if encoding not in ENCODINGS:  # "bytes" or anything unknown: a safe upper bound
            return len(text.encode("utf-8", "surrogatepass"))
        size = len(text)
        if size < self.CACHE_MIN_CHARS or size > self.CACHE_MAX_CHARS // 8:
            return len(self._encoding(encoding).encode_ordinary(text))
        key = (encoding, text)
        with self._cache_lock:
            n = self._cache.get(key)
            if n is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return n
        n = len(self._encoding(encoding).encode_ordinary(text))
        with self._cache_lock:
            if key not in self._cache:
                self._cache[key] = n
                self._cache_chars += size
                while self._cache_chars > self.CACHE_MAX_CHARS:
                    (_, old), _ = self._cache.popitem(last=False)
                    self._cache_chars -= len(old)
        return n

    def count_many(self, texts: list[str], encoding: str) -> int:
        # A plain loop: encode_ordinary_batch spins up a thread pool and is slower for short lists.
        return sum(self.count(t, encoding) for t in texts)
