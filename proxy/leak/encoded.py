r"""Secrets written encoded in an answer: base64, hex, rot13 or escapes of a built-in key shape.

A model asked to "encode the key" answers with `c2stcHJvai0...` (base64 of `sk-proj-...`),
`736b2d70726f6a2d...` (hex) or `fx-cebw-...` (rot13). Each encoding is one anchored
alternative of the secret detector: its anchors are the encoded forms of the key shapes'
literal starts (`sk-` -> `c2st` / `736b2d` / `fx-`), so clean text costs nothing more than
a few more anchors in the one anchor search. A candidate (an anchor followed by a run of
the encoding's characters) is decoded and counts only if the decoded text holds a built-in
key shape (the same regexes as for plain keys; rot13 also needs letters and digits, as a
random key has). A hit is detector `secret`, kind `base64` / `hex` / `rot13` / `escaped`.

Covered:
- the encoded text starts with the key (what "encode the key" gives), at a word start; hex
  also after `0x`;
- a key in the middle of a longer encoded text (base64 of "the key is sk-..."): the base64
  anchors are the key starts encoded at each of the three byte alignments (`sk-` at offset
  0/1/2 mod 3 gives `c2st` / `NrL` / `zay`, the characters fully given by the key start's
  bytes), hex anchors at any byte; the candidate run, from the anchor on plus the few run
  characters just before it, is decoded at every 4-character phase and searched with the
  key regexes (so a key later in the same run counts too). rot13 keeps word boundaries, so
  a key inside rot13 prose is found by the rot13 alternative; rot13 of a PEM header too;
- base64 wrapped into lines (76-column MIME, 64-column PEM, `\r\n`, up to 8 spaces of
  indentation after a break, JSON-escaped `\n` written as text), also with a line break inside the anchor;
- escapes of the key's characters, all or some: `\x73\x6b\x2d`, `\u0073`, `\U00000073`,
  `\u{73}`, and HTML character references `&#115;` / `&#x73;` (which render as the key).

Bounded: a candidate run is looked at for at most _RUN (8,192) characters after its anchor,
line breaks included; a hit redacts from the anchor to the run's end (or the cap), the run
characters before the anchor (the text before the key) stay. A run longer than the cap is
judged on its first _RUN characters and the rest is scanned as new text. While a candidate
is open its text is held (at most max_len of the alternative, ~9 KB, under the stage's
max_hold_chars): only text that holds an anchor and continues in the encoding's characters
is held, so a clean answer is not delayed. Not covered: leetspeak (the rest of a key is
random, so a leet key cannot be told from a random string: not worth the false positives),
keys spelled out, other encodings (base32, URL percent-encoding, octal escapes).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools

import regex

from proxy.leak.literal import trie_pattern
from proxy.leak.pattern import Alternative, Check

# The literal starts of the built-in key shapes, as written (secret.BUILTIN lists them lower-cased).
KEY_STARTS = ("sk-", "sk_live_", "rk_live_", "AKIA", "ASIA", "ABIA", "ACCA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
              "github_pat_", "xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xoxe-", "AIza", "eyJ", "-----BEGIN")
_MAX = 4096  # longest encoded run looked at when it starts with the key (a PEM block's start is enough to judge)
_RUN = 8192  # longest run after an anchor looked at for a key anywhere in it (documented cap)
_BACK = 12  # run characters before an anchor decoded with it (the key start's first bits, the byte before)


def _b64_anchor(start: str) -> str:
    """The base64 characters fully given by `start` at the beginning of the encoded text."""
    raw = start.encode()
    # 3 bytes give 4 characters; 1 or 2 bytes left over give 1 or 2 more (6 bits each, all known)
    return base64.b64encode(raw).decode()[: len(raw) // 3 * 4 + len(raw) % 3]


@functools.cache
def _shapes() -> tuple[list["regex.Pattern[str]"], "regex.Pattern[str]"]:
    """The built-in key shapes' regexes (but generic_secret), one by one and as one search."""
    from proxy.leak.secret import BUILTIN
    sources = [pat for name, (pat, _, _, _) in BUILTIN.items() if name != "generic_secret"]
    return [regex.compile(pat) for pat in sources], regex.compile("|".join(f"(?:{pat})" for pat in sources))


def is_key(text: str, random: bool = False) -> bool:
    """Whether `text` starts with a built-in key shape (`random`: one with letters and digits or both cases)."""
    for p in _shapes()[0]:
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


# ---------------------------------------------------------------- a key anywhere in an encoded run

def has_key(text: str) -> bool:
    """Whether a built-in key shape occurs anywhere in `text` (with the shapes' own word-start rules)."""
    return _shapes()[1].search(text) is not None


_B64 = "A-Za-z0-9+/_\\-"  # standard and url-safe alphabets (as a class body)
# A line break inside a run: LF or CRLF (also JSON-escaped), then up to 8 spaces of indentation.
# In a run it must come after a line of 16 to 76 run characters and be followed by a line of 16+
# run characters or by the run's last, shorter line (that line must end there: "\nAnything else?"
# is not base64), so a match holds at most _RUN // 17 + 2 breaks: its length stays bounded (max_len).
_BREAK = r"(?:\r?\n|(?:\\r)?\\n)[ \t]{0,8}"
_BREAK_RE = regex.compile(r"(?:\r?\n|(?:\\r)?\\n)[ \t]*")


# Free anchors cost clean text twice: every position holding an anchor enters the anchor search's
# trie, and a streamed delta that ends in the beginning of an anchor is held until the next one shows
# whether the anchor follows. The anchors inside a base64 run may sit anywhere in a word; base64 is
# case-sensitive, so they are searched as written (Alternative.case_sensitive: "NrL" is not looked for
# at "nrl"), and each is chosen among the stretches of 3 to 8 characters the key start gives (a
# character only partly given by it counts as all its possible values, at either end; at least 2
# fully given) to start with a character that rarely ends a streamed delta of prose, by this ranking
# (exact case): digits, "+" and "/"; then upper-case letters but A and I (words seldom end in one);
# then lower-case letters rare at a word's end and A, I; then l o k g h a; any other first character
# ranks last. Ties: fewer forms, then longer. What is left: `leU` (eyJ at alignment 2: every stretch
# starts with l, e or a 16-valued character) and the G/W/m/2 of gh*_ at alignment 1, so a delta ending
# in "l", "m" or a digit waits one event (prose streamed word by word: 7.8 % of deltas end holding
# something without these anchors, 17.8 % with them searched case-insensitively and l n d f v first,
# 10.4 % now; measured in session 13, bench/RESULTS.md).
_FIRST_RANK = {**{c: 0 for c in "0123456789+/"}, **{c: 1 for c in "BCDEFGHJKLMNOPQRSTUVWXYZ"},
               **{c: 2 for c in "jqvxzbcmwupAI"}, **{c: 3 for c in "lokgha"}}


def _rank(forms: list[str]) -> tuple[int, int, int]:
    return max(_FIRST_RANK.get(f[0], 9) for f in forms), len(forms), -len(forms[0])


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64_choices(raw: bytes, a: int) -> list[tuple[int, list[str]]]:
    """Per base64 character of `raw` at byte offset `a`: (index, the characters it can be)."""
    lo, hi = 8 * a, 8 * (a + len(raw))
    bits = int.from_bytes(b"\0" * a + raw + b"\0\0\0", "big")
    total = 8 * (a + len(raw) + 3)
    out = []
    for i in range(total // 6):
        b0, b1 = 6 * i, 6 * i + 6
        known = [lo <= b < hi for b in range(b0, b1)]
        if not any(known):
            continue
        v = bits >> (total - b1) & 63
        mask = sum(1 << (5 - k) for k in range(6) if known[k])
        out.append((i, [_ALPHABET[c] for c in range(64) if c & mask == v & mask]))
    return out


def _b64_anchors() -> list[tuple[str, int, int, str]]:
    """(anchor, alignment, index of its first character in the base64 of "\\0" * alignment + key start,
    the key start) for every key start at byte offset 0, 1 and 2 mod 3 inside the decoded text."""
    options: dict[tuple[str, int], list[tuple[list[str], int]]] = {}
    for s in KEY_STARTS:
        for a in range(3):
            ch = _b64_choices(s.encode(), a)
            opts = options[(s, a)] = []
            for x in range(len(ch)):
                for y in range(x + 3, min(len(ch), x + 8) + 1):
                    part = ch[x:y]
                    if any(len(c) > 1 for _, c in part[1:-1]) or sum(len(c) == 1 for _, c in part) < 2:
                        continue
                    forms = [""]
                    for _, c in part:
                        forms = [f + v for f in forms for v in c]
                    opts.append((forms, part[0][0]))
    chosen = {k: min(v, key=lambda o: _rank(o[0])) for k, v in options.items()}
    return [(f, a, first, s) for (s, a), (forms, first) in chosen.items() for f in forms]


def _b64_bytes(chars: str) -> bytes | None:
    chars = chars.rstrip("=")
    if len(chars) % 4 == 1:
        chars = chars[:-1]  # a lone trailing character carries no whole byte
    chars += "=" * (-len(chars) % 4)
    try:
        return base64.b64decode(chars.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _run_before(text: str, end: int, alphabet: "regex.Pattern[str]") -> str:
    """The run characters (line breaks dropped) just before `end`, at most _BACK of them."""
    seg = _BREAK_RE.sub("", text[max(0, end - 3 * _BACK):end])
    m = alphabet.search(seg)
    return m.group()[-_BACK:] if m else ""


_B64_TAIL = regex.compile("[" + _B64 + "]*\\Z")
_HEX_TAIL = regex.compile(r"[0-9A-Fa-f]*\Z")


def _b64_inner_check(m: "regex.Match[str]") -> bool:
    body = _BREAK_RE.sub("", m.group())
    back = _run_before(m.string, m.start(), _B64_TAIL)
    for anchor, a, k, start in _ANCHORS_B64:
        if not body.startswith(anchor):
            continue
        # The key start at its alignment: the run characters before the anchor from the start of the
        # key start's 4-character group (at alignment 0 also the group before: the byte before the
        # key) or, when the run does not reach back that far, the key start's own characters (fail
        # closed: then the key's word-start rule sees no byte before it).
        need = k if a else k + 4
        lead = back[-need:] if len(back) >= need else (
            back[-k:] if len(back) >= k > 0 else base64.b64encode(b"\0" * a + start.encode()).decode()[:k])
        raw = _b64_bytes(lead + body)
        if raw is not None and has_key(raw.decode("latin-1")):
            return True
    # The anchor may be a chance one at the wrong alignment with a key later in the same run: the
    # run's 4-character groups start at one of four phases, one of them decodes it right.
    full = back + body
    for p in range(4):
        raw = _b64_bytes(full[p:])
        if raw is not None and has_key(raw.decode("latin-1")):
            return True
    return False


def _hex_inner_check(m: "regex.Match[str]") -> bool:
    full = _run_before(m.string, m.start(), _HEX_TAIL) + m.group()
    for p in range(2):
        run = full[p:]
        try:
            if has_key(bytes.fromhex(run[: len(run) // 2 * 2]).decode("latin-1")):
                return True
        except ValueError:
            continue
    return False


_ESC = (r"\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}|\\u\{[0-9A-Fa-f]{1,6}\}"
        r"|&#[xX][0-9A-Fa-f]{1,8};?|&#[0-9]{1,10};?")
_ESC_RE = regex.compile(_ESC)
_KEY_CHARS_TAIL = regex.compile(r"[A-Za-z0-9_\-.]*\Z")


def _unescape(m: "regex.Match[str]") -> str:
    e = m.group()
    if e[0] == "&":
        code = int(e[3:].rstrip(";"), 16) if e[2] in "xX" else int(e[2:].rstrip(";"))
    else:
        code = int(e[2:].strip("{}"), 16)
    return chr(code) if code <= 0x10FFFF else "\ufffd"


def _escaped_check(m: "regex.Match[str]") -> bool:
    # Literal key characters just before the first escape ("s\x6b-...") belong to the key.
    before = m.string[max(0, m.start() - 16):m.start()]
    lit = _KEY_CHARS_TAIL.search(before).group()
    return has_key(lit + _ESC_RE.sub(_unescape, m.group()))


_ANCHORS_B64 = _b64_anchors()


def _with_breaks(anchor: str) -> list[str]:
    """The anchor and its forms with a line break (LF) after each of its characters but the last (a CRLF or an
    escaped `\\n` inside the anchor itself is not looked for: three times the anchors, for a rare case)."""
    out = [anchor]
    for j in range(1, len(anchor)):
        out.append(anchor[:j] + "\n" + anchor[j:])
    return out


def inner_alternatives() -> tuple[list[Alternative], dict[str, Check]]:
    """A key anywhere in a base64 / hex run, line-wrapped base64, escapes; rot13 of a PEM header."""
    b64 = sorted({a for a, _, _, _ in _ANCHORS_B64})
    # In the pattern, a line break may sit between any two characters of the anchor.
    c = "[" + _B64 + "]"
    # a break only after a line of 16 to 76 run characters (MIME wraps at 76, PEM at 64): a long
    # unwrapped run followed by a line of prose is not one run
    line = r"(?<=(?:^|[^" + _B64 + r"]|\\n)" + c + "{16,76})"
    b64_src = ("(?:" + trie_pattern(b64, between="(?:" + _BREAK + ")?") + ")" +
               "(?:" + c + "|" + line + _BREAK + "(?=" + c + "{16}|" + c + r"{1,15}={0,2}(?:\r?\n|\\n|[\"'`)\].,;]|\Z))){12,"
               + str(_RUN) + "}={0,2}")
    hexes = sorted({s.encode().hex() for s in KEY_STARTS})
    esc_starts = ("\\x", "\\u", "&#")
    rot_pem = codecs.encode("-----BEGIN", "rot13")
    rpk = codecs.encode("PRIVATE KEY", "rot13")
    rblock = codecs.encode(" BLOCK", "rot13")
    rend = codecs.encode("-----END", "rot13")
    body = r"[A-Za-z0-9+/=\s:,\\\-]"
    alts = [
        Alternative("secret__base64_inner", "secret", "base64", b64_src, _RUN + (_RUN // 17 + 2) * 12 + 8 * 13,
                    tuple(sorted({v for a in b64 for v in _with_breaks(a)})), False, case_sensitive=True),
        Alternative("secret__hex_inner", "secret", "hex", r"(?i:(?:" + "|".join(hexes) + r")[0-9a-f]{8," + str(_RUN) + "})",
                    _RUN + 30, tuple(hexes), False),
        Alternative("secret__escaped", "secret", "escaped",
                    r"(?:" + _ESC + r")(?:" + _ESC + r"|[A-Za-z0-9_\-.]){7,400}", 401 * 13, esc_starts, False),
        Alternative("secret__rot13_pem", "secret", "rot13",
                    regex.escape(rot_pem) + r"[A-Z ]{0,40}" + rpk + "(?:" + rblock + ")?-----(?:" + body + "*?"
                    + regex.escape(rend) + r"[A-Z ]{0,40}" + rpk + "(?:" + rblock + ")?-----|" + body + "*)",
                    8400, (rot_pem.lower(),), False),
    ]
    checks: dict[str, Check] = {"secret__base64_inner": _b64_inner_check, "secret__hex_inner": _hex_inner_check,
                                "secret__escaped": _escaped_check}
    return alts, checks


def encoded_alternatives() -> tuple[list[Alternative], dict[str, Check]]:
    b64 = sorted({_b64_anchor(s) for s in KEY_STARTS})
    hexes = sorted({s.encode().hex() for s in KEY_STARTS})
    rot = sorted({codecs.encode(s, "rot13") for s in KEY_STARTS if s[0] != "-"})  # a PEM header has spaces
    esc = regex.escape
    alts = [
        Alternative("secret__base64", "secret", "base64",
                    r"(?<![A-Za-z0-9+/_\-])(?:" + "|".join(map(esc, b64)) + r")[A-Za-z0-9+/_\-]{8," + str(_MAX) + "}={0,2}",
                    _MAX + 20, tuple(b64), True, case_sensitive=True),
        Alternative("secret__hex", "secret", "hex",
                    r"(?i:(?-i:(?<![A-Za-z0-9]))(?:0x)?(?:" + "|".join(hexes) + r")[0-9a-f]{8," + str(_MAX) + "})",
                    _MAX + 30, tuple(hexes) + tuple("0x" + h for h in hexes), True),
        Alternative("secret__rot13", "secret", "rot13",
                    r"(?<![A-Za-z0-9_\-])(?:" + "|".join(map(esc, rot)) + r")[A-Za-z0-9_\-.]{8," + str(_MAX) + "}",  # "." for a JWT
                    _MAX + 20, tuple(rot), True, case_sensitive=True),
    ]
    checks = {"secret__base64": _b64_check, "secret__hex": _hex_check, "secret__rot13": _rot13_check}
    inner, inner_checks = inner_alternatives()
    checks.update(inner_checks)
    return alts + inner, checks
