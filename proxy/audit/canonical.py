"""RFC 8785 (JCS) canonical JSON and the hashes built on it.

An entry's hash is SHA-256 over the canonical JSON of the entry without its
`hash` and `sig` members; the signature covers that hash. Anyone with the
record and the public key can recompute both, in any language with a JCS
implementation.

Speed: the reference `rfc8785` package costs ~200 µs per record here, which
made the verifier too slow for 100k records a minute. For the shape records
have (ASCII keys, safe integers, finite floats) orjson with sorted keys emits
the same bytes once floats are pre-rendered the ECMAScript way; anything else
takes the reference path. tests/audit/test_canonical.py checks the two agree.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson
import rfc8785

UNSEALED = ("hash", "sig")  # members that are not part of the hashed entry
GENESIS = "0" * 64  # `prev` of a chain's first entry
_SAFE_INT = 2**53


class _Slow(Exception):
    pass


def es6_number(f: float) -> str:
    """ECMAScript Number::toString of a finite double (what RFC 8785 prescribes)."""
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    mant, _, exp = repr(abs(f)).partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    # decimal point position relative to the start of `digits`
    n = len(whole.lstrip("0")) + (int(exp) if exp else 0) if whole.lstrip("0") else \
        (int(exp) if exp else 0) - (len(frac) - len(frac.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _prepare(obj: Any) -> Any:
    """A copy orjson can serialize exactly as JCS would, or _Slow. (Hot in the verifier: keep it flat.)"""
    t = type(obj)
    if t is str or t is bool or obj is None:
        return obj
    if t is dict:
        out = {}
        for k, v in obj.items():
            if type(k) is not str or not k.isascii():  # JCS sorts by UTF-16 units, orjson by code points
                raise _Slow
            out[k] = v if type(v) is str else _prepare(v)
        return out
    if t is list:
        return [v if type(v) is str else _prepare(v) for v in obj]
    if t is int:
        if -_SAFE_INT < obj < _SAFE_INT:
            return obj
        raise _Slow
    if t is float:
        if not math.isfinite(obj):
            raise _Slow
        return orjson.Fragment(es6_number(obj))
    raise _Slow


def canonical(obj: Any) -> bytes:
    try:
        return orjson.dumps(_prepare(obj), option=orjson.OPT_SORT_KEYS)
    except (_Slow, TypeError):  # TypeError: lone surrogates, which the reference encoder judges
        return rfc8785.dumps(obj)


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k not in UNSEALED}
    return hashlib.sha256(canonical(body)).hexdigest()
