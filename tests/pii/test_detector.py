"""Detection, table-driven: what the default finds, context, threshold, overlaps, allow-list, custom."""

import socket

import pytest

from proxy.pii.detector import Detector as _Detector
from proxy.pii.recognizer import offline_tld_extractor
from proxy.pii.settings import DetectionSettings

TLD = offline_tld_extractor()  # parsed once for the module's detectors


def Detector(settings):
    return _Detector(settings, extractor=TLD)


@pytest.fixture(scope="module")
def det():
    return Detector(DetectionSettings())


def found(det, text):
    return [(text[s.start:s.end], s.entity) for s in det.find(text)]


@pytest.mark.parametrize("text, expected", [
    ("mail me at jane.doe@example.com today", [("jane.doe@example.com", "EMAIL_ADDRESS")]),
    ("Call +1-984-182-0190 please", [("+1-984-182-0190", "PHONE_NUMBER")]),
    ("Phone: 467 3395", [("467 3395", "PHONE_NUMBER")]),
    ("desk (898)666-3621x0135 ok", [("(898)666-3621x0135", "PHONE_NUMBER")]),
    ("my card 4111 1111 1111 1111 was charged", [("4111 1111 1111 1111", "CREDIT_CARD")]),
    ("card 2623322164608847", [("2623322164608847", "CREDIT_CARD")]),  # 2-series Mastercard
    ("Here's my SSN: 460-89-9847", [("460-89-9847", "US_SSN")]),
    ("My IBAN is GB56HXDO88167774656119", [("GB56HXDO88167774656119", "IBAN_CODE")]),
    ("my iban is gb42nawi04454264788619", [("gb42nawi04454264788619", "IBAN_CODE")]),
    ("server 86.121.97.248 and 6e40:4041:c617:e898:c11:40d2:c669:2eb4",
     [("86.121.97.248", "IP_ADDRESS"), ("6e40:4041:c617:e898:c11:40d2:c669:2eb4", "IP_ADDRESS")]),
])
def test_finds_structured_types(det, text, expected):
    assert found(det, text) == expected


@pytest.mark.parametrize("text", [
    "The meeting moved to 2024-05-17 10:30 in room 12.",
    "We sold 1,234,567 units in 2023 at $19.99 each.",
    "Version 3.11.7 fixed bug #4512 and 10 others.",
    "card 4111 1111 1111 1112",  # fails Luhn
    "IBAN GB56HXDO88167774656118",  # bad checksum
    "ssn 000-12-3456",  # invalid area number
    "Our offices are at 3838 243 Agnostou Square",  # two groups without context: a street number
    "Just a normal sentence without anything personal in it.",
])
def test_leaves_non_pii_alone(det, text):
    assert found(det, text) == []


def test_context_words_lift_weak_patterns(det):
    assert found(det, "ref 5403926876 attached") == []
    assert found(det, "Desk: 5403926876") == [("5403926876", "PHONE_NUMBER")]


def test_overlaps_keep_the_strongest(det):
    # The card pattern and the phone pattern both match; Luhn makes the card win.
    assert found(det, "number 4969800024734372") == [("4969800024734372", "CREDIT_CARD")]


def test_threshold_allow_list_and_entities_per_settings():
    strict = Detector(DetectionSettings(score_threshold=0.9))
    assert found(strict, "call +1-984-182-0190 or mail a@example.com") == [("a@example.com", "EMAIL_ADDRESS")]
    allow = Detector(DetectionSettings(allow_list=("Support@Acme.com",)))
    assert found(allow, "write support@acme.com or bob@acme.com") == [("bob@acme.com", "EMAIL_ADDRESS")]
    only = Detector(DetectionSettings(entities=("US_SSN",)))
    assert found(only, "a@example.com 460-89-9847") == [("460-89-9847", "US_SSN")]


def test_custom_recognizers_in_presidio_yaml_format():
    custom = Detector(DetectionSettings(recognizers=(
        {"name": "employee id", "supported_entity": "EMPLOYEE_ID",
         "patterns": [{"name": "emp", "regex": r"\bEMP-\d{6}\b", "score": 0.9}], "context": ["employee"]},
        {"name": "projects", "supported_entity": "PROJECT", "deny_list": ["Project Falcon"]},
    )))
    assert found(custom, "EMP-123456 works on project falcon") == [("EMP-123456", "EMPLOYEE_ID"), ("project falcon", "PROJECT")]
    assert {"EMPLOYEE_ID", "PROJECT"} <= custom.entities


def test_url_is_opt_in():
    assert found(Detector(DetectionSettings()), "see https://example.com/a") == []
    assert found(Detector(DetectionSettings(entities=("URL",))), "see https://example.com/a") == [("https://example.com/a", "URL")]


def test_detection_is_offline(det, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("detection tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert found(_Detector(DetectionSettings(), extractor=offline_tld_extractor()), "x user@some-new-domain.co.uk y") == [("user@some-new-domain.co.uk", "EMAIL_ADDRESS")]


def test_unicode_offsets_are_characters(det):
    text = "Ünïcødé ✓ — mail ünï@example.com ☎ +44 7700 900123"
    assert found(det, text) == [("ünï@example.com", "EMAIL_ADDRESS"), ("+44 7700 900123", "PHONE_NUMBER")]


def test_budget_bounds_cpu_on_pathological_input(det):
    from proxy.pii.detector import DetectionBudgetExceeded

    with pytest.raises(DetectionBudgetExceeded):
        det.find("4111 " * 40_000, budget_s=0.02)


def test_numbers_in_a_row_are_each_found(det):
    text = "4111 1111 1111 1111 4111 1111 1111 1111 +1-415-555-0134 or 5555 4111 1111 1111 1111 12 times"
    assert found(det, text) == [("4111 1111 1111 1111", "CREDIT_CARD"), ("4111 1111 1111 1111", "CREDIT_CARD"),
                                ("+1-415-555-0134", "PHONE_NUMBER"), ("4111 1111 1111 1111", "CREDIT_CARD")]


def test_ascii_and_unicode_window_paths_agree():
    from proxy.pii.detector import _windows

    text = "call 415-555-0134, mail a@b.co\nid 12 34 x\t9 end"
    assert _windows(text, False) == _windows(text + " é", False)[:len(_windows(text, False))]
    assert _windows(text, False) == [(5, "415-555-0134,"), (24, "a@b.co"), (34, "12 34"), (42, "9")]
    assert _windows("no digits at all", False) == []


@pytest.mark.parametrize("pad", [500, 501, 502, 503, 505, 508])
def test_long_windows_are_scanned_in_overlapping_pieces(det, pad):
    text = "7 " * pad + "4111 1111 1111 1111" + " 7" * 700  # one 2.8 KB window
    assert found(det, text) == [("4111 1111 1111 1111", "CREDIT_CARD")]


@pytest.mark.parametrize("text, value, entity", [
    ("mail jane\u200b.doe@exa\u200dmple.com now", "jane\u200b.doe@exa\u200dmple.com", "EMAIL_ADDRESS"),
    ("card ４１１１ １１１１ １１１１ １１１１ ok", "４１１１ １１１１ １１１１ １１１１", "CREDIT_CARD"),
    ("ssn ٤٦٠-٨٩-٩٨٤٧", "٤٦٠-٨٩-٩٨٤٧", "US_SSN"),
])
def test_cheap_evasions_are_undone_and_the_original_span_is_reported(det, text, value, entity):
    assert found(det, text) == [(value, entity)]


def test_evasion_round_trip_is_byte_exact(det):
    import os

    from proxy.pii.restorer import Restorer
    from proxy.pii.tokenizer import tokenize
    from proxy.pii.vault import Vault

    text = "mail jane\u200b.doe@example.com, card ４１１１ １１１１ １１１１ １１１１"
    vault = Vault(os.urandom(32), text)
    tokenized = tokenize(text, det.find(text), vault)
    assert tokenized == "mail <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>"
    assert Restorer(vault).restore_text(tokenized) == text


def test_context_words_are_looked_up_at_the_right_offsets_after_a_dotted_capital_i(det):
    # "İ".lower() is "i̇" (two code points): a lower-cased copy of the text is longer than the text.
    for pre in ("", "İ", "İİ", "İİİİİİ"):
        base = [(s.end - s.start, s.entity, s.score) for s in det.find("phone 5551234567")]
        text = f"{pre} phone 5551234567"
        assert [(s.end - s.start, s.entity, s.score) for s in det.find(text)] == base, pre
        assert found(det, f"5551234567 phone {pre}")[0][0] == "5551234567"


@pytest.mark.parametrize("c", ["ı", "İ", "ſ", "\u212a"])
def test_an_iban_next_to_a_letter_that_case_folds_to_ascii_is_found(det, c):
    assert found(det, f"IBAN {c}DE89370400440532013000 ok") == [("DE89370400440532013000", "IBAN_CODE")]
    assert found(det, f"IBAN DE89370400440532013000{c} ok") == [("DE89370400440532013000", "IBAN_CODE")]
    assert found(det, "IBAN xDE89370400440532013000 ok") == []  # an ASCII letter before: still not an IBAN start
