"""NER is opt-in: a named model that is missing is a startup error; an installed one is used."""

import pytest

from proxy.pii.detector import Detector
from proxy.pii.ner import NerModel, NerModelMissing
from proxy.pii.settings import DetectionSettings


def test_missing_model_is_a_clear_startup_error():
    with pytest.raises(NerModelMissing, match="not installed"):
        Detector(DetectionSettings(ner_model="en_core_web_sm_not_installed"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A real spaCy pipeline saved to disk (entity ruler only): no download, no weights."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": [{"LOWER": "ada"}, {"LOWER": "lovelace"}]},
                        {"label": "GPE", "pattern": "London"}])
    path = tmp_path_factory.mktemp("ner") / "tiny_ner"
    nlp.to_disk(path)
    return path


def test_model_directory_adds_person_and_location(model_dir):
    assert [(h.entity, h.start, h.end) for h in NerModel(str(model_dir)).find("Ada Lovelace lived in London.")] == [
        ("PERSON", 0, 12), ("LOCATION", 22, 28)]
    det = Detector(DetectionSettings(ner_model=str(model_dir)))
    spans = det.find("Ada Lovelace (ada@example.com) lived in London.")
    assert [(s.entity, s.start) for s in spans] == [("PERSON", 0), ("EMAIL_ADDRESS", 14), ("LOCATION", 40)]
    assert {"PERSON", "LOCATION"} <= det.entities
