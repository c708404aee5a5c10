"""A set of literal strings as one regex, factored into a trie.

A plain alternation of N literals is tried one by one at every position; the trie
form shares prefixes, so a scan costs about the same for 10 or 10,000 literals.
"""

from __future__ import annotations

from typing import Iterable

from typing import Callable

import regex


def trie_pattern(literals: Iterable[str], prefixes: bool = False, escape: Callable[[str], str] = regex.escape,
                 between: str = "") -> str:
    """Regex source (no flags, no boundaries) matching exactly the given literals,
    or with `prefixes` any non-empty prefix of one of them; `between`, a regex allowed between
    two characters of a literal (a line break inside a wrapped base64 anchor)."""
    root: dict = {}
    for lit in literals:
        if not lit:
            continue
        node = root
        for ch in lit:
            node = node.setdefault(ch, {})
        node[""] = {}  # end marker
    return _emit(root, prefixes, escape, True, between) if root else r"(?!)"


def _emit(node: dict, prefixes: bool = False, escape: Callable[[str], str] = regex.escape, root: bool = True,
          between: str = "") -> str:
    ends = "" in node or (prefixes and not root)
    branches = [escape(ch) + _emit(child, prefixes, escape, False, between) for ch, child in sorted(node.items()) if ch != ""]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if between and not root:
        body = between + body
    if ends:
        # The literal may stop here or continue: longest first.
        return "(?:" + body + ")?" if len(branches) > 1 or len(body) > 1 else body + "?"
    return body


def literal_forms(literals: Iterable[str]) -> list[str]:
    """The forms of case-insensitive literals to search for: each as written, lower-cased and case-folded.

    `regex`'s IGNORECASE folds one character to one character (simple case folding), so a
    case-folded "straße-7731" ("strasse-7731") does not match the text "straße-7731", nor
    "i̇zmir" (casefold of "İzmir") the text "İzmir". The form as written matches the text as
    written in any simple case; the case-folded form matches "STRASSE-7731" too. A literal whose
    casefold() is its lower() at the same length (every ASCII one) needs only that form: the trie
    and the anchors of 1,000 tenants' identifiers do not double."""
    out: set[str] = set()
    for lit in literals:
        if lit:
            folded = lit.casefold()
            out.add(folded)
            if len(folded) != len(lit) or folded != lit.lower():
                out.update((lit, lit.lower()))
    return sorted(out)


def word_literals(literals: Iterable[str]) -> "regex.Pattern[str]":
    """Case-insensitive literals (see literal_forms) that must not sit inside a longer word or number."""
    src = trie_pattern(literal_forms(literals))
    return regex.compile(r"(?i:(?<![^\W_])(?:" + src + r")(?![^\W_]))")
