"""garak's attack prompts scored offline by the injection engine (no proxy, no model, no network).

    .venv/bin/python -m bench.injection_garak --garak /tmp/garak-venv/bin/python [--json out.json]

garak (a separate venv: see bench/redteam.py for how to install it without torch) builds the prompts
of its probe families `encoding`, `latentinjection`, `promptinject` and `dan` (the default, non-"Full"
probes; garak's sampling of payloads and templates is seeded here, so runs compare); this bench scores every prompt with the
same Scorer the stage runs and prints, per probe, the share of prompts that get each action at the
default bands (allow < 0.5 <= reinforce < 0.9 <= block; flag = reinforce by default). bench/redteam.py sends the same families through the running
proxy; this one isolates the injection engine and runs in seconds.
Caveat: these prompts are public and were read while writing rules (bench/RESULTS.md says which), so
they are a regression check, not an unseen test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from proxy.injection.band import ACTIONS, Bands
from proxy.injection.classifier import Classifier
from proxy.injection.scorer import Scorer

FAMILIES = ("encoding", "latentinjection", "promptinject", "dan")

# Run inside garak's interpreter: instantiate every probe class of the families, dump its prompts.
_DUMP = r"""
import importlib, inspect, json, os, sys
base = sys.argv[1]
for k in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
    os.environ[k] = base
import random
from garak import _config
_config.load_base_config()
_config.run.seed = 0
from garak.probes.base import Probe
out = {}
for fam in sys.argv[3:]:
    m = importlib.import_module("garak.probes." + fam)
    for name, cls in inspect.getmembers(m, inspect.isclass):
        if not issubclass(cls, Probe) or cls.__module__ != m.__name__ or name.startswith("_") or name.endswith("Full"):
            continue
        random.seed(0)  # garak samples payloads and templates with `random`: fixed, so runs compare
        try:
            p = cls()
        except Exception as e:  # a probe that needs a model or a download: say so, go on
            out[fam + "." + name] = {"error": type(e).__name__ + ": " + str(e)[:200]}
            continue
        texts = []
        for x in p.prompts:
            t = getattr(x, "text", None)
            if t is None and hasattr(x, "turns"):
                t = x.turns[-1].content.text
            texts.append(t if isinstance(t, str) else str(x))
        out[fam + "." + name] = {"prompts": texts}
json.dump(out, open(sys.argv[2], "w"))
"""


def dump_prompts(garak_python: str, families: tuple[str, ...]) -> dict:
    with tempfile.TemporaryDirectory(prefix="ramparts-garak-") as tmp:
        out = Path(tmp) / "prompts.json"
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # garak iterates sets of strings: fixed order, same prompts
        p = subprocess.run([garak_python, "-c", _DUMP, tmp, str(out), *families], capture_output=True, text=True, timeout=600, env=env)
        if p.returncode != 0 or not out.exists():
            raise SystemExit(f"garak prompt dump failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
        return json.loads(out.read_text())


def score_probes(probes: dict, scorer: Scorer, bands: Bands) -> dict:
    report: dict = {"probes": {}, "families": {}}
    fam_counts: dict[str, Counter] = {}
    for name, entry in sorted(probes.items()):
        if "error" in entry:
            report["probes"][name] = {"error": entry["error"]}
            continue
        c = Counter()
        for text in entry["prompts"]:
            v = scorer.score(text).value
            c["n"] += 1
            c[bands.action(v)] += 1
        if not c["n"]:
            continue
        report["probes"][name] = {k: c[k] for k in ("n",) + ACTIONS}
        fam_counts.setdefault(name.split(".")[0], Counter()).update(c)
    for fam, c in fam_counts.items():
        report["families"][fam] = {k: c[k] for k in ("n",) + ACTIONS}
    return report


def print_report(report: dict) -> None:
    print(f"  {'probe':<52} {'n':>5} " + " ".join(f"{a:>9}" for a in ACTIONS) + "   (share of prompts per action)")
    for name, r in report["probes"].items():
        if "error" in r:
            print(f"  {name:<52} not built: {r['error'][:60]}")
            continue
        print(f"  {name:<52} {r['n']:5d} " + " ".join(f"{r[a] / r['n']:9.2f}" for a in ACTIONS))
    print("  family totals:")
    for fam, r in report["families"].items():
        print(f"  {fam:<52} {r['n']:5d} " + " ".join(f"{r[a] / r['n']:9.2f}" for a in ACTIONS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--garak", required=True, help="python of a venv with garak installed")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    probes = dump_prompts(args.garak, tuple(f for f in args.families.split(",") if f))
    report = score_probes(probes, Scorer(Classifier.load()), Bands())
    print(f"garak prompts scored by the injection engine (default bands {Bands().thresholds()}):")
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
