"""Optional named-entity recognition with an installed spaCy model (opt-in, never downloaded).

`ner_model` is an installed spaCy package name (e.g. en_core_web_sm) or a model
directory. A policy that names a model that is not there fails at startup with a
clear message: NER models are an opt-in extra and nothing is fetched at run time.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# spaCy labels -> Presidio entity names.
LABELS: dict[str, str] = {
    "PERSON": "PERSON", "PER": "PERSON",
    "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
    "ORG": "ORGANIZATION", "NORP": "NRP", "DATE": "DATE_TIME", "TIME": "DATE_TIME",
}
NER_ENTITIES: frozenset[str] = frozenset(LABELS.values())
SCORE = 0.85  # what Presidio's SpacyRecognizer gives NER hits


class NerModelMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class NerHit:
    start: int
    end: int
    entity: str


class NerModel:
    """A loaded spaCy pipeline; `find(text)` returns PERSON/LOCATION/... spans."""

    def __init__(self, name: str, base_dir: Path | None = None) -> None:
        self.name = name
        self._nlp = _load(name, base_dir)

    def find(self, text: str) -> list[NerHit]:
        doc = self._nlp(text)
        return [NerHit(e.start_char, e.end_char, LABELS[e.label_]) for e in doc.ents if e.label_ in LABELS]


def _load(name: str, base_dir: Path | None) -> Any:
    path = Path(name)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    is_dir = path.is_dir()
    if not is_dir and importlib.util.find_spec(name.replace("-", "_")) is None:
        raise NerModelMissing(
            f"pii: the policy asks for NER model {name!r}, which is not installed. Install the model "
            f"package into this environment (an opt-in extra, never downloaded at run time), point "
            f"ner_model at a model directory, or remove ner_model to run pattern recognizers only."
        )
    import spacy  # heavy: imported only when a policy opts into NER

    # Only the entity recognizer matters; the rest would cost CPU per request.
    return spacy.load(path if is_dir else name, exclude=["parser", "lemmatizer", "textcat", "tagger", "attribute_ruler", "senter"])
