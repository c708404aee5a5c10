"""A set of literal strings as one regex, factored into a trie.

A plain alternation of N literals is tried one by one at every position; the trie
form shares prefixes, so a scan costs about the same for 10 or 10,000 literals.
"""

from __future__ import annotations

from typing import Iterable

from typing import Callable

import regex


def trie_pattern(literals: Iterable[str], prefixes: bool = False, escape: Callable[[str], str] = regex.escape) -> str:
    """Regex source (no flags, no boundaries) matching exactly the given literals,
    or with `prefixes` any non-empty prefix of one of them."""
    root: dict = {}
    for lit in literals:
        if not lit:
            continue
        node = root
        for ch in lit:
            node = node.setdefault(ch, {})
        node[""] = {}  # end marker
    return _emit(root, prefixes, escape) if root else r"(?!)"


def _emit(node: dict, prefixes: bool = False, escape: Callable[[str], str] = regex.escape, root: bool = True) -> str:
    ends = "" in node or (prefixes and not root)
    branches = [escape(ch) + _emit(child, prefixes, escape, False) for ch, child in sorted(node.items()) if ch != ""]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends:
        # The literal may stop here or continue: longest first.
        return "(?:" + body + ")?" if len(branches) > 1 or len(body) > 1 else body + "?"
    return body


def word_literals(literals: Iterable[str]) -> "regex.Pattern[str]":
    """Case-insensitive literals that must not sit inside a longer word or number."""
    src = trie_pattern(sorted({lit.casefold() for lit in literals if lit}))
    return regex.compile(r"(?i:(?<![^\W_])(?:" + src + r")(?![^\W_]))")
