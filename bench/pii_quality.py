"""PII quality on shared/data/pii_dev.jsonl: the proxy's fast path vs Presidio's stock engine.

    .venv/bin/python -m bench.pii_quality [FILE.jsonl]

Per entity type: precision / recall / F1 with exact-span and overlap matching, type-agnostic
span recall, the round trip (tokenize -> restore byte-exact on every row, whole and streamed
per character), and detection throughput. Baseline, same run: Presidio's AnalyzerEngine
(no-op NLP engine, offline) with its stock recognizers. Targets for the structured types
(email, phone, card, SSN, IBAN, IP): recall >= 0.98, precision >= 0.95.
"""

from __future__ import annotations

import sys
from pathlib import Path

from proxy.pii.detector import Detector
from proxy.pii.evaluate import format_table, measure, read_rows
from proxy.pii.reference import PresidioReference
from proxy.pii.settings import DEFAULT_ENTITIES, DetectionSettings

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "pii_dev.jsonl"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else DEV
    rows = read_rows(path)
    det = Detector(DetectionSettings())
    runs = [("Presidio AnalyzerEngine, stock recognizers (baseline)", PresidioReference(det, stock=True).find),
            ("Ramparts fast path (the proxy's detection)", det.find)]
    results = []
    for name, find in runs:
        rep = measure(rows, find)
        print(f"\n== {name}: {path.name}\n{format_table(rep)}")
        results.append((name, rep))
    print("\n== structured types, exact spans (target: recall >= 0.98, precision >= 0.95)")
    print(f"{'engine':<55} " + " ".join(f"{t[:13]:>13}" for t in DEFAULT_ENTITIES))
    for name, rep in results:
        cells = []
        for t in DEFAULT_ENTITIES:
            p, r, _ = rep.exact[t].prf()
            cells.append(f"{p:.3f}/{r:.3f}")
        print(f"{name[:55]:<55} " + " ".join(f"{c:>13}" for c in cells))
    print("(cells: precision/recall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
