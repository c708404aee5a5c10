from proxy.pii.detector import Detector
from proxy.pii.reference import PresidioReference
from proxy.pii.settings import DetectionSettings


def test_presidio_engine_runs_offline_with_our_and_stock_recognizers():
    det = Detector(DetectionSettings())
    text = "Mail jane@example.com, card 4111 1111 1111 1111, SSN 460-89-9847."
    want = [("jane@example.com", "EMAIL_ADDRESS"), ("4111 1111 1111 1111", "CREDIT_CARD"), ("460-89-9847", "US_SSN")]
    for ref in (PresidioReference(det), PresidioReference(det, stock=True)):
        assert [(text[s.start:s.end], s.entity) for s in ref.find(text)] == want
    assert [(text[s.start:s.end], s.entity) for s in det.find(text)] == want
