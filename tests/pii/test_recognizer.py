import pytest

from proxy.pii.recognizer import (
    CaseFoldIbanRecognizer,
    PhoneShapeRecognizer,
    RecognizerConfigError,
    WideCreditCardRecognizer,
    builtin_recognizers,
    custom_recognizers,
)


def test_builtins_follow_the_entity_list():
    names = {r.supported_entities[0] for r in builtin_recognizers({"CREDIT_CARD", "US_SSN"})}
    assert names == {"CREDIT_CARD", "US_SSN"}


def test_card_validation_is_luhn_with_sane_lengths():
    r = WideCreditCardRecognizer()
    assert r.validate_result("4111 1111 1111 1111") is True
    assert r.validate_result("4111 1111 1111 1112") is False
    assert r.validate_result("0000000000000") is False  # Luhn-valid but all one digit


def test_iban_checksum_in_any_case():
    r = CaseFoldIbanRecognizer()
    assert r.validate_result("GB56HXDO88167774656119") is True
    assert r.validate_result("gb56hxdo88167774656119") is True
    assert r.validate_result("GB56HXDO88167774656110") is False


@pytest.mark.parametrize("text, invalid", [
    ("415-555-0134", False), ("+44 7700 900123", False), ("2024-05-17", True), ("17.05.2024", True),
    ("10.20.30.40", True), ("123-45-6789", True), ("1111111", True), ("12 34", True), ("345-899-3560x4587", False),
])
def test_phone_invalidation(text, invalid):
    assert PhoneShapeRecognizer().invalidate_result(text) is invalid


def test_custom_recognizers_report_every_error_at_once():
    with pytest.raises(RecognizerConfigError) as e:
        custom_recognizers([
            {"name": "a", "supported_entity": "A", "patterns": [{"name": "p", "regex": "(unclosed", "score": 0.5}]},
            {"name": "b", "supported_entity": "B"},  # neither patterns nor deny_list
            {"name": "c", "supported_entity": "C", "patterns": [{"name": "p", "regex": "x", "score": 2}]},
        ])
    msg = str(e.value)
    assert "recognizers[0]" in msg and "recognizers[1]" in msg and "recognizers[2]" in msg


def test_custom_recognizer_names_may_not_shadow_presidio_ones():
    with pytest.raises(RecognizerConfigError, match="conflicts"):
        custom_recognizers([{"name": "EmailRecognizer", "supported_entity": "X", "deny_list": ["x"]}])
