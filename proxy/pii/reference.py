"""Presidio's AnalyzerEngine, offline: the slow reference the fast path is measured against.

`PresidioReference(detector)` runs the detector's own recognizers through Presidio's
engine (no-op NLP engine: no spaCy model, nothing downloaded); `stock=True` runs
Presidio's stock recognizers instead (python-phonenumbers' PhoneRecognizer, the stock
card and IBAN patterns), to show what the defaults get.
"""

from __future__ import annotations

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)

from proxy.pii.detector import Detector, Span, resolve
from proxy.pii.recognizer import OfflineEmailRecognizer, offline_tld_extractor

NO_OP_NLP = {"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}


def stock_recognizers(entities: frozenset[str]) -> list:
    stock = {
        "EMAIL_ADDRESS": lambda: OfflineEmailRecognizer(offline_tld_extractor()),
        "PHONE_NUMBER": PhoneRecognizer,
        "CREDIT_CARD": CreditCardRecognizer,
        "US_SSN": UsSsnRecognizer,
        "IBAN_CODE": IbanRecognizer,
        "IP_ADDRESS": IpRecognizer,
        "URL": UrlRecognizer,
    }
    return [make() for name, make in stock.items() if name in entities]


class PresidioReference:
    def __init__(self, detector: Detector, stock: bool = False) -> None:
        self._detector = detector
        recognizers = stock_recognizers(detector.entities) if stock else detector.recognizers
        nlp = NlpEngineProvider(nlp_configuration=NO_OP_NLP).create_engine()
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
        self._engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
        self._entities = sorted(detector.entities)
        self._threshold = detector.settings.score_threshold

    def find(self, text: str) -> list[Span]:
        results = self._engine.analyze(text, language="en", entities=self._entities, score_threshold=self._threshold)
        spans = [Span(r.start, r.end, r.entity_type, r.score) for r in results]
        return resolve(text, spans, self._detector.allow)
