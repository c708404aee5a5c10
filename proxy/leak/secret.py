"""Credential shapes: provider keys, cloud keys, tokens, private keys, generic high-entropy assignments.

One compiled alternation (one pass per scan); each alternative is a named group so
a hit says which kind it was without carrying the value. The policy can add its
own (name, regex, max_len) patterns; they join the same pass.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable

import orjson
import regex

from proxy.leak.hit import Hit
from proxy.leak.pattern import Alternative, Check, PatternDetector

# A key never starts in the middle of a word: "task-..." is not "sk-...".
_B = r"(?<![A-Za-z0-9_\-])"

_PEM_BODY = r"[A-Za-z0-9+/=\s:,\\\-]"  # base64, line breaks (also JSON-escaped), header fields

# name -> (pattern, longest match in characters, literal starts (any case), anchors need a word start)
BUILTIN: dict[str, tuple[str, int, tuple[str, ...], bool]] = {
    "anthropic_key": (_B + r"sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_\-]{20,200}", 220, ("sk-ant-",), True),
    "openai_key": (_B + r"sk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,200}", 220, ("sk-",), True),
    "stripe_key": (_B + r"(?:sk|rk)_live_[0-9A-Za-z]{20,200}", 210, ("sk_live_", "rk_live_"), True),
    "aws_access_key": (_B + r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![0-9A-Z])", 20, ("akia", "asia", "abia", "acca"), True),
    "github_token": (_B + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})", 270,
                     ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), True),
    "slack_token": (_B + r"xox[baprse]-[A-Za-z0-9\-]{10,250}", 260, ("xox",), True),
    "google_api_key": (_B + r"AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])", 39, ("aiza",), True),
    # Up to the END line when there is one; otherwise as far as key material goes. Unbounded on
    # purpose: a body longer than the hold cap stops the answer (overflow) instead of leaking its tail.
    "private_key": (r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:" + _PEM_BODY + r"*?"
                    r"-----END[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----|" + _PEM_BODY + r"*)", 8400, ("-----begin",), False),
    "jwt": (_B + r"eyJ[A-Za-z0-9_\-]{8,4096}\.eyJ[A-Za-z0-9_\-]{8,4096}\.[A-Za-z0-9_\-]{8,4096}", 12300, ("eyj",), True),
    # password = "...", aws_secret_access_key: ..., "client_secret": "..."
    # The keyword may follow "_" or "-" (aws_secret_access_key) but not a letter: "this" is not "s...".
    # The look-behind is not case-folded: under (?i) [A-Za-z] also matches "İ", "ı", "ſ" and the
    # Kelvin sign, and "İpassword: ..." was never matched.
    "generic_secret": (r"(?i:(?-i:(?<![A-Za-z0-9]))(?:(?:api|access|auth|client|private|secret)[_\-]?(?:key|secret|token)"
                       r"|secret|passwd|password|token)[\"']?[ \t]{0,4}[:=][ \t]{0,4}[\"']?)"
                       r"(?P<value>[A-Za-z0-9/+_\-.=~]{16,256})", 320,
                       ("api", "access", "auth", "client", "private", "secret", "passwd", "password", "token"), True),
}

# Shapes providers print in error bodies ("Incorrect API key provided: sk-proj-****abcd").
_KEY_FRAGMENT = regex.compile(
    r"(?<![A-Za-z0-9])(?:sk|rk|pk)[-_][A-Za-z0-9_*.\-]{2,}|(?<![A-Za-z0-9])key-[A-Za-z0-9*]{8,}"
    r"|(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z*]{8,}|\*{4,}[A-Za-z0-9]{2,8}")


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _looks_random(m: "regex.Match[str]") -> bool:
    v = m.group("value")
    # Words and paths ("password=correcthorsebattery") are low entropy or letter-only.
    return entropy(v) >= 3.5 and any(c.isdigit() for c in v) and any(c.isalpha() for c in v)


def secret_alternatives(extra: Iterable[tuple[str, str, int, tuple[str, ...]]] = (), builtin: bool = True) -> tuple[list[Alternative], dict[str, Check]]:
    """Built-in and policy patterns. `extra`: (name, regex, max_len, anchors); no anchors: scanned always."""
    table = list(BUILTIN.items()) if builtin else []
    alts = [Alternative(f"secret__{name}", "secret", name, pat, max_len, anchors, word)
            for name, (pat, max_len, anchors, word) in table]
    alts += [Alternative(f"secret__{name}", "secret", name, pat, max_len, anchors or None, False)
             for name, pat, max_len, anchors in extra]
    checks: dict[str, Check] = {"secret__generic_secret": _looks_random} if builtin else {}
    return alts, checks


def secret_detector(extra: Iterable[tuple[str, str, int, tuple[str, ...]]] = (), builtin: bool = True) -> PatternDetector | None:
    """Secrets alone (error bodies, whole-text tools)."""
    alts, checks = secret_alternatives(extra, builtin)
    return PatternDetector(alts, checks) if alts else None


def check_pattern(pat: str) -> None:
    """Raise ValueError if a policy pattern does not compile or can match the empty string."""
    try:
        p = regex.compile(pat)
    except regex.error as e:
        raise ValueError(f"invalid regex: {e}") from e
    if p.fullmatch("") is not None:
        raise ValueError("the pattern matches the empty string")
    if p.groups:
        raise ValueError("use non-capturing groups (?:...) in policy patterns")


def redact_text(text: str, detector: PatternDetector | None, marker: str = "[redacted]") -> tuple[str, list[Hit]]:
    """Whole-text redaction (no streaming): every secret and key fragment becomes `marker`."""
    hits: list[Hit] = []
    if detector is not None:
        hits, _ = detector.scan(text, 0, final=True)
    out, last = [], 0
    for h in hits:  # overlapping hits (client_secret=... and secret=...) redact as one
        if h.start >= last:
            out.append(text[last:h.start])
            out.append(marker)
        last = max(last, h.end)
    out.append(text[last:])
    return _KEY_FRAGMENT.sub(marker, "".join(out)), hits


def scrub_error_body(body: bytes, detector: PatternDetector | None = None) -> bytes:
    """An upstream error body with every key and key fragment replaced (JSON kept JSON)."""
    det = detector if detector is not None else _DEFAULT
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return redact_text(body.decode("utf-8", "replace"), det)[0].encode()
    return orjson.dumps(_scrub_json(obj, det))


def _scrub_json(obj, det):
    if isinstance(obj, str):
        return redact_text(obj, det)[0]
    if isinstance(obj, dict):
        return {k: _scrub_json(v, det) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub_json(v, det) for v in obj]
    return obj


_DEFAULT = secret_detector()
