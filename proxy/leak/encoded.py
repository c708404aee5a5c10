"""Secrets written encoded in an answer: base64, hex or rot13 of a built-in key shape.

A model asked to "encode the key" answers with `c2stcHJvai0...` (base64 of `sk-proj-...`),
`736b2d70726f6a2d...` (hex) or `fx-cebw-...` (rot13). Each encoding is one anchored
alternative of the secret detector: its anchors are the encoded forms of the key shapes'
literal starts (`sk-` -> `c2st` / `736b2d` / `fx-`), so clean text costs nothing more than
a few more anchors in the one anchor search. A candidate (an anchor followed by a run of
the encoding's characters) is decoded and counts only if the decoded text is a built-in
key shape (the same regexes as for plain keys; rot13 also needs letters and digits, as a
random key has). A hit is detector `secret`, kind `base64` / `hex` / `rot13`.

Covered: the encoded text starts with the key (what "encode the key" gives), at a word
start; hex also after `0x`. Not covered: a key in the middle of a longer encoded text
(base64 of "the key is sk-..."), line-wrapped base64, escaped hex (`\\x73\\x6b`), leetspeak.
"""

from __future__ import annotations

import base64
import binascii
import codecs

import regex

from proxy.leak.pattern import Alternative, Check

# The literal starts of the built-in key shapes, as written (secret.BUILTIN lists them lower-cased).
KEY_STARTS = ("sk-", "sk_live_", "rk_live_", "AKIA", "ASIA", "ABIA", "ACCA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
              "github_pat_", "xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xoxe-", "AIza", "eyJ", "-----BEGIN")
_MAX = 4096  # longest encoded run looked at (a PEM block's start is enough to judge)


def _b64_anchor(start: str) -> str:
    """The base64 characters fully given by `start` at the beginning of the encoded text."""
    raw = start.encode()
    # 3 bytes give 4 characters; 1 or 2 bytes left over give 1 or 2 more (6 bits each, all known)
    return base64.b64encode(raw).decode()[: len(raw) // 3 * 4 + len(raw) % 3]


def _shapes():
    from proxy.leak.secret import BUILTIN
    return [regex.compile(pat) for name, (pat, _, _, _) in BUILTIN.items() if name != "generic_secret"]


_SHAPES = None


def is_key(text: str, random: bool = False) -> bool:
    """Whether `text` starts with a built-in key shape (`random`: one with letters and digits or both cases)."""
    global _SHAPES
    if _SHAPES is None:
        _SHAPES = _shapes()
    for p in _SHAPES:
        m = p.match(text)
        if m is not None and (not random or _mixed(m.group())):
            return True
    return False


def _mixed(v: str) -> bool:
    return any(c.isalpha() for c in v) and (any(c.isdigit() for c in v) or (any(c.isupper() for c in v) and any(c.islower() for c in v)))


def _b64_check(m: "regex.Match[str]") -> bool:
    run = m.group().rstrip("=")
    if len(run) % 4 == 1:
        run = run[:-1]  # a lone trailing character carries no whole byte
    run += "=" * (-len(run) % 4)  # unpadded (base64url) text decodes to its last byte too
    try:
        raw = base64.b64decode(run, altchars=b"-_" if ("-" in run or "_" in run) else None, validate=True)
    except (binascii.Error, ValueError):
        return False
    return is_key(raw.decode("latin-1"))


def _hex_check(m: "regex.Match[str]") -> bool:
    run = m.group()
    if run[:2].lower() == "0x":
        run = run[2:]
    try:
        return is_key(bytes.fromhex(run[: len(run) // 2 * 2]).decode("latin-1"))
    except ValueError:
        return False


def _rot13_check(m: "regex.Match[str]") -> bool:
    # rot13 of prose ("fx-forward-contract") can decode to a key shape: a key is letters with digits
    # or with both cases.
    return is_key(codecs.decode(m.group(), "rot13"), random=True)


def encoded_alternatives() -> tuple[list[Alternative], dict[str, Check]]:
    b64 = sorted({_b64_anchor(s) for s in KEY_STARTS})
    hexes = sorted({s.encode().hex() for s in KEY_STARTS})
    rot = sorted({codecs.encode(s, "rot13") for s in KEY_STARTS if s[0] != "-"})  # a PEM header has spaces
    esc = regex.escape
    alts = [
        Alternative("secret__base64", "secret", "base64",
                    r"(?<![A-Za-z0-9+/_\-])(?:" + "|".join(map(esc, b64)) + r")[A-Za-z0-9+/_\-]{8," + str(_MAX) + "}={0,2}",
                    _MAX + 20, tuple(b64), True),
        Alternative("secret__hex", "secret", "hex",
                    r"(?i:(?<![A-Za-z0-9])(?:0x)?(?:" + "|".join(hexes) + r")[0-9a-f]{8," + str(_MAX) + "})",
                    _MAX + 30, tuple(hexes) + tuple("0x" + h for h in hexes), True),
        Alternative("secret__rot13", "secret", "rot13",
                    r"(?<![A-Za-z0-9_\-])(?:" + "|".join(map(esc, rot)) + r")[A-Za-z0-9_\-.]{8," + str(_MAX) + "}",  # "." for a JWT
                    _MAX + 20, tuple(rot), True),
    ]
    return alts, {"secret__base64": _b64_check, "secret__hex": _hex_check, "secret__rot13": _rot13_check}
