"""Presidio recognizers, built offline.

Presidio's own recognizer classes and YAML format, with the few changes needed here:
- e-mail validation uses a tldextract instance pinned to its bundled Public Suffix List
  snapshot (the stock one fetches the list from the internet on first use);
- credit cards: Presidio's Luhn check with a wider candidate pattern (2-series
  Mastercard, 12-digit Maestro, 19-digit cards, which the stock pattern misses);
- IBAN: Presidio's checksum, also for lower-case input;
- phone numbers: a shape pattern with context words instead of python-phonenumbers'
  matcher (7 ms per 2 KB, 8 regions; see bench/pii_speed.py), so it fits the fast path.
Custom recognizers come from the policy in Presidio's YAML recognizer format.
"""

from __future__ import annotations

import re
from typing import Any

import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer
from presidio_analyzer.input_validation.yaml_recognizer_models import CustomRecognizerConfig
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)


_NON_DIGITS = re.compile(r"\D+")
_DIGIT_RUNS = re.compile(r"\d+")


class RecognizerConfigError(ValueError):
    """A recognizer in the policy cannot be built (bad regex, bad format)."""


class OfflineEmailRecognizer(EmailRecognizer):
    def __init__(self, extractor: tldextract.TLDExtract) -> None:
        super().__init__()
        self._extract = extractor

    def validate_result(self, pattern_text: str) -> bool:
        return self._extract(pattern_text).fqdn != ""


class WideCreditCardRecognizer(CreditCardRecognizer):
    PATTERNS = [
        # 13-19 digits in groups, issuer prefixes 2-6 (Luhn decides).
        Pattern("Credit card (grouped)", r"(?<![+\w\-])(?:[2-6]\d{3})(?:[- ]?\d{2,4}){2,4}(?:[- ]?\d{1,3})?\b", 0.3),
        # 12-digit Maestro.
        Pattern("Maestro (12)", r"(?<![+\w\-])(?:5[0678]|6\d)\d{10}\b", 0.3),
        # Diners / JCB 14-15 digits starting with 1 or 2131/1800.
        Pattern("JCB/Diners", r"(?<![+\w\-])(?:2131|1800|30[0-5]\d|3[68]\d{2})\d{10,11}\b", 0.3),
    ]

    SHRINK_AT_SPACES = True  # two cards in a row: see detector._Compiled._scan_shrinking
    DIGITS = (12, 19)

    def __init__(self) -> None:
        super().__init__(patterns=self.PATTERNS)

    def validate_result(self, pattern_text: str) -> bool:
        digits = pattern_text.replace("-", "").replace(" ", "")
        if not 12 <= len(digits) <= 19 or len(set(digits)) == 1 or not digits.isdigit():
            return False
        # Presidio's Luhn check, without its per-digit list building (hot on dense input).
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = ord(ch) - 48
            if i & 1:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        return total % 10 == 0


class CaseFoldIbanRecognizer(IbanRecognizer):
    # Any case, but ASCII only: under IGNORECASE Presidio's [A-Z] and [A-Z0-9] also match "ı", "İ", "ſ"
    # and the Kelvin sign, so an IBAN next to one was never found (its look-arounds took them for
    # letters, or its last group took one in and the checksum failed). Both cases spelled out instead.
    def __init__(self) -> None:
        super().__init__(regex_flags=re.DOTALL | re.MULTILINE | re.IGNORECASE)
        self.patterns = [Pattern(p.name, "(?-i:" + p.regex.replace("[A-Z0-9]", "[A-Za-z0-9]").replace("[A-Z]", "[A-Za-z]") + ")",
                                 p.score) for p in self.patterns]

    def validate_result(self, pattern_text: str):
        upper = pattern_text.upper()
        result = super().validate_result(upper)
        return result


class PhoneShapeRecognizer(PatternRecognizer):
    """Phone numbers by shape: +country, (area), digit groups, extension; context words help."""

    _HEAD = r"(?<![\w+/.\-])"
    _CC = r"(?:\+\d{1,3}[ .\-]?)?"  # +country code
    _AREA = r"(?:\(\d{1,4}\)[ .\-]?)?"  # (area) or (0)
    _EXT = r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?"  # extension
    _TAIL = r"(?![\w]|[.\-/:]\d)"
    # Three or more groups, or any groups after +country / (area).
    GROUPED = _HEAD + _CC + _AREA + r"\d{1,5}(?:[ .\-]\d{1,8}){2,5}" + _EXT + _TAIL
    INTL = _HEAD + r"(?:\+\d{1,3}[ .\-]?" + _AREA + r"|\(\d{1,4}\)[ .\-]?)\d{1,8}(?:[ .\-]\d{1,8}){0,5}" + _EXT + _TAIL
    # Two plain groups ("467 3395") look like street numbers and zip codes too: context decides.
    TWO_GROUPS = _HEAD + r"\d{2,5}[ .\-]\d{4,8}" + _EXT + r"(?![\w]|[.\-/:]\d| \d)"
    PLUS = r"(?<![\w+])\+\d{8,14}(?!\w)"
    BARE = r"(?<![\w+/.\-])\d{8,12}(?![\w]|[.\-/:]\d)"
    PATTERNS = [
        # One alternation per score: fewer passes over each window.
        Pattern("phone (grouped, international, +digits)", f"(?:{INTL}|{GROUPED}|{PLUS})", 0.4),
        Pattern("phone (two groups, bare digits)", f"(?:{TWO_GROUPS}|{BARE})", 0.1),  # needs a context word
    ]
    CONTEXT = ["phone", "telephone", "tel", "cell", "cellphone", "mobile", "call", "fax", "desk", "office",
               "contact", "reach", "text", "sms", "whatsapp", "dial", "number", "registered", "answering"]
    _DATE = re.compile(r"^(?:\d{4}[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])"
                       r"|(?:0?[1-9]|[12]\d|3[01])[-./](?:0?[1-9]|1[0-2])[-./](?:\d{4}|\d{2}))(?:[ T]\d|$)")
    _IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
    _SSN_SHAPE = re.compile(r"^\d{3}-\d{2}-\d{4}$")  # the US SSN layout is not a phone layout
    _EXT_RX = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,6}$", re.I)

    SHRINK_AT_SPACES = True  # see detector._Compiled: a number may run into the next one
    DIGITS = (7, 15)
    CUT_NEEDS_NEIGHBOR = True

    def __init__(self) -> None:
        super().__init__(supported_entity="PHONE_NUMBER", patterns=self.PATTERNS, context=self.CONTEXT)

    def invalidate_result(self, pattern_text: str) -> bool:
        # An extension needs an "x" ("x12", "ext. 12"): without one there is nothing to strip.
        core = self._EXT_RX.sub("", pattern_text) if "x" in pattern_text or "X" in pattern_text else pattern_text
        digits = _NON_DIGITS.sub("", core)
        if not 7 <= len(digits) <= 15 or len(set(digits)) == 1:
            return True
        if self._DATE.match(core) or self._IPV4.match(core) or self._SSN_SHAPE.match(core):
            return True
        groups = _DIGIT_RUNS.findall(core)
        if len(groups) >= 6 and max(map(len, groups)) <= 2 and core[0] not in "+(":
            return True  # "61 63 63 65 73 73": hex bytes or a list of small numbers, not a phone
        return False


def offline_tld_extractor() -> tldextract.TLDExtract:
    """tldextract on its bundled Public Suffix List snapshot: no network, no cache on disk.

    Parsing the snapshot takes ~0.3 s, so it is done here, at startup, not on a request.
    """
    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    extractor("warm-up.example.co.uk")
    return extractor


def builtin_recognizers(entities: tuple[str, ...] | frozenset[str],
                        extractor: tldextract.TLDExtract | None = None) -> list[EntityRecognizer]:
    """The built-in recognizers for the requested entity types, all offline."""
    out: list[EntityRecognizer] = []
    wanted = set(entities)
    if "EMAIL_ADDRESS" in wanted:
        out.append(OfflineEmailRecognizer(extractor or offline_tld_extractor()))
    if "PHONE_NUMBER" in wanted:
        out.append(PhoneShapeRecognizer())
    if "CREDIT_CARD" in wanted:
        out.append(WideCreditCardRecognizer())
    if "US_SSN" in wanted:
        out.append(UsSsnRecognizer())
    if "IBAN_CODE" in wanted:
        out.append(CaseFoldIbanRecognizer())
    if "IP_ADDRESS" in wanted:
        out.append(IpRecognizer())
    if "URL" in wanted:
        out.append(UrlRecognizer())
    return out


def custom_recognizers(specs: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[PatternRecognizer]:
    """Recognizers declared in the policy, validated with Presidio's own YAML schema."""
    out: list[PatternRecognizer] = []
    errors: list[str] = []
    for i, spec in enumerate(specs):
        try:
            conf = CustomRecognizerConfig.model_validate({"type": "custom", "supported_language": "en", **spec})
            fields = {k: v for k, v in conf.model_dump(exclude_none=True).items()
                      if k in ("name", "supported_entity", "patterns", "context", "deny_list", "deny_list_score", "supported_language")}
            rec = PatternRecognizer.from_dict(fields)
            for p in rec.patterns:
                re.compile(p.regex)  # the fast path compiles with `re`: refuse what it cannot run
            out.append(rec)
        except Exception as e:  # pydantic and re errors alike: report them all at once
            errors.append(f"recognizers[{i}] ({spec.get('name', '?') if isinstance(spec, dict) else '?'}): {e}")
    if errors:
        raise RecognizerConfigError("; ".join(errors))
    return out
