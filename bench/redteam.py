"""Red-team runs against Ramparts (every stage on) in front of the mock provider, offline.

    python -m bench.redteam --garak /tmp/garak-venv/bin/python --json out.json
    python -m bench.redteam --no-garak            # the converter phase only

Two phases, both counted per stage from Ramparts' own audit records (one record per request:
injection action, PII counts, leak hits, outcome):

1. garak (its own venv; `--garak PYTHON`): the REST generator sends the JWT and the tenant header,
   one garak run per probe family (promptinject, latentinjection, dan, encoding, web_injection,
   ansiescape, apikey) with string/regex detectors only. The mock echoes the prompt, so anything the
   proxy lets through comes back: garak's "hit" means the payload crossed the proxy in both
   directions. Requests the proxy refuses (400/403) are garak "skip codes" (no output).
2. Converters: PyRIT's base64, rot13 and leetspeak converters (re-implemented here: PyRIT 1.x needs
   torch and transformers) applied to known-bad prompts (garak's DAN/promptinject texts and the
   labelled injection rows) for the injection stage, and to secrets the provider answers
   (mock:say=...) for the leak stage. Plain versions run alongside as the baseline.

garak's venv, without torch: `python3 -m venv /tmp/garak-venv && /tmp/garak-venv/bin/pip install
--no-deps garak && /tmp/garak-venv/bin/pip install colorama tqdm base2048 mikeshardmind-base2048 ecoji
zalgolib markdown xdg-base-dirs jsonpath-ng backoff requests pyyaml lorem stdlibs ftfy
py-markdown-table avidtools==0.1.2 langdetect==1.0.9 httpx aiohttp numpy nltk jsonschema` (docs/security-tests.md).
"""

from __future__ import annotations

import argparse
import base64
import codecs
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import yaml

from bench.core import ROOT, SECRET, bench_policy, extra_pipeline, free_port, spawn, wait_listening
from proxy.devtoken import mint

PROBES = {
    "promptinject": "promptinject",
    "latentinjection": "latentinjection",
    "dan": "dan.Dan_11_0,dan.DanInTheWild,dan.AutoDANCached",
    "encoding": "encoding.InjectBase64,encoding.InjectROT13,encoding.InjectHex,encoding.InjectBase32,encoding.InjectMorse,encoding.InjectLeet",
    "web_injection": "web_injection",
    "ansiescape": "ansiescape.AnsiRaw,ansiescape.AnsiEscaped",
    "apikey": "apikey.GetKey,apikey.CompleteKey",
}

# PyRIT's LeetspeakConverter default substitutions (pyrit/prompt_converter/leetspeak_converter.py),
# first choice of each letter so the run is deterministic
LEET = {"a": "4", "b": "8", "e": "3", "g": "9", "i": "1", "l": "1", "o": "0", "s": "5", "t": "7", "z": "2"}


def conv_base64(text: str) -> str:  # PyRIT Base64Converter
    return base64.b64encode(text.encode()).decode()


def conv_rot13(text: str) -> str:  # PyRIT ROT13Converter
    return codecs.encode(text, "rot13")


def conv_leet(text: str) -> str:  # PyRIT LeetspeakConverter (deterministic)
    return "".join(LEET.get(ch.lower(), ch) for ch in text)


CONVERTERS = {"plain": lambda t: t, "base64": conv_base64, "rot13": conv_rot13, "leet": conv_leet}

SECRETS = [  # provider answers that the leak stage must not let through (fake, well-known test values)
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "sk-proj-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV",
    "xoxb-123456789012-1234567890123-abcdefghijABCDEFGHIJklmn",
]


def seed_injections(limit: int) -> list[str]:
    """Known-bad prompts: the labelled injection rows of the shared data set (label 1), ours to use."""
    rows = []
    for name in ("injection_dev.jsonl",):
        path = ROOT.parent / "shared" / "data" / name
        if not path.exists():
            path = Path("/work/shared/data") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("label") in (1, "1", "injection", True) and isinstance(row.get("text"), str):
                rows.append(row["text"])
    return rows[:limit]


class Target:
    """mock provider + `ramparts serve` with every stage on, audit records read back per phase."""

    def __init__(self, tmp: Path, stages_from: str) -> None:
        self.tmp = tmp
        self.env = {**os.environ, "RAMPARTS_BENCH_JWT_SECRET": SECRET, "RAMPARTS_BENCH_PROVIDER_KEY": "sk-bench-provider-key",
                    "RAMPARTS_BENCH_STAGE_SECRET": os.urandom(32).hex(), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
        self.stage_types = ["rate_limit", "budget", "injection", "pii", "leak", "audit"]
        self.stages, self.tenant_extra = extra_pipeline(self.stage_types, ROOT / stages_from)
        self.procs = {}
        self.seen = 0

    def start(self) -> "Target":
        mock_port = free_port()
        self.procs["mock"] = spawn("mock", ["-m", "proxy.cli", "mock-provider", "--listen", f"127.0.0.1:{mock_port}",
                                            "--no-log-bodies"], None, mock_port, self.tmp, self.env)
        wait_listening(self.procs["mock"])
        policy = bench_policy(mock_port, self.stages, self.tenant_extra)
        policy["server"] = {"sse_keepalive_s": 0}
        (self.tmp / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        self.port, self.ops = free_port(), free_port()
        self.procs["ramparts"] = spawn("ramparts", ["-m", "proxy.cli", "serve", "--policy", str(self.tmp / "policy.yaml"),
                                                    "--listen", f"127.0.0.1:{self.port}", "--ops-listen", f"127.0.0.1:{self.ops}",
                                                    "--data-dir", str(self.tmp / "data"), "--log-level", "WARNING"],
                                       None, self.port, self.tmp, self.env)
        wait_listening(self.procs["ramparts"])
        self.token = mint(SECRET.encode(), tenant="acme", scopes=("ai:completion",), issuer="https://issuer.bench", ttl_s=24 * 3600)
        return self

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()

    def records(self) -> list[dict]:
        out = []
        for f in sorted((self.tmp / "data" / "audit" / "records").rglob("*.jsonl")):
            for line in f.read_bytes().splitlines():
                try:
                    r = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if r.get("type") == "exchange":
                    out.append(r)
        return out

    def new_records(self, wait: float = 1.5) -> list[dict]:
        """Records written since the last call (the audit writer flushes in the background)."""
        time.sleep(wait)
        recs = self.records()
        new, self.seen = recs[self.seen:], len(recs)
        return new


def per_stage(records: list[dict]) -> dict:
    c: Counter[str] = Counter()
    for r in records:
        v = r.get("verdicts") or {}
        c["requests"] += 1
        act = v.get("injection_action")
        if act:
            c[f"injection:{act}"] += 1
        if r.get("outcome") == "denied":
            c[f"denied_by:{(r.get('denied') or {}).get('stage')}"] += 1
        if v.get("pii_counts"):
            c["pii:requests_with_entities"] += 1
        if v.get("leak_hits"):
            c["leak:responses_with_hits"] += 1
        if r.get("outcome") not in ("ok", "denied"):
            c[f"outcome:{r.get('outcome')}"] += 1
    return dict(sorted(c.items()))


def run_garak(target: Target, garak_py: str, cap: int, families: list[str], tmp: Path) -> dict:
    gen = {"rest": {"RestGenerator": {
        "name": "ramparts", "uri": f"http://127.0.0.1:{target.port}/v1/chat/completions", "method": "post",
        "headers": {"Authorization": f"Bearer {target.token}", "X-Tenant-ID": "acme", "Content-Type": "application/json"},
        "req_template_json_object": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "$INPUT"}]},
        "response_json": True, "response_json_field": "$.choices[0].message.content",
        "skip_codes": [400, 403, 413, 415, 422], "request_timeout": 30}}}
    (tmp / "rest.json").write_text(json.dumps(gen))
    (tmp / "garak.yaml").write_text(yaml.safe_dump({
        "run": {"soft_probe_prompt_cap": cap, "generations": 1, "seed": 1},
        "system": {"parallel_attempts": False, "lite": True, "show_z": False},
        "reporting": {"report_dir": str(tmp / "garak-reports")}}))
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "xdg"), "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
           "XDG_CACHE_HOME": str(tmp / "xdg-cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = {}
    target.new_records(0.5)
    for fam in families:
        prefix = f"rt-{fam}"
        log = tmp / "xdg" / "garak" / "garak.log"
        log_from = log.stat().st_size if log.exists() else 0
        t0 = time.monotonic()
        p = subprocess.run([garak_py, "-m", "garak", "--config", str(tmp / "garak.yaml"), "--target_type", "rest",
                            "-G", str(tmp / "rest.json"), "--probes", PROBES[fam], "--report_prefix", prefix,
                            "--skip_unknown"], capture_output=True, text=True, env=env, cwd=tmp, timeout=1800)
        took = time.monotonic() - t0
        reports = list((tmp / "xdg").rglob(f"{prefix}.report.jsonl")) + list((tmp / "garak-reports").rglob(f"{prefix}.report.jsonl"))
        evals: dict[str, dict] = {}
        attempts = 0
        skipped = 0
        for rep in reports[:1]:
            for line in rep.read_text().splitlines():
                e = json.loads(line)
                if e.get("entry_type") == "eval":
                    key = f"{e['probe']} / {e['detector']}"
                    evals[key] = {"passed": e["passed"], "total": e.get("total_evaluated", e.get("total")),
                                  "hits": e.get("total_evaluated", e.get("total", 0)) - e["passed"]}
                elif e.get("entry_type") == "attempt" and e.get("status") == 2:
                    attempts += 1
                    outs = e.get("outputs") or []
                    if all((o is None) or (isinstance(o, dict) and o.get("text") is None) for o in outs):
                        skipped += 1
        out[fam] = {"probes": PROBES[fam], "garak_exit": p.returncode, "seconds": round(took, 1),
                    "attempts": attempts, "refused_by_proxy (no output)": skipped, "evals": evals,
                    "ramparts": per_stage(target.new_records())}
        if log.exists():  # garak exits 0 when a probe module fails to import: say so
            with log.open("rb") as f:
                f.seek(log_from)
                lines = [ln.decode(errors="replace").strip()[-200:] for ln in f]
            failed = [ln for ln in lines if "failed to load probe" in ln or "failed import of garak.probes" in ln]
            if failed:
                out[fam]["load_failures"] = failed
            no_detector = [ln for ln in lines if "Exception instantiating garak.detectors" in ln]
            if no_detector:  # model-based detectors (transformers/torch) that this venv leaves out
                out[fam]["detectors_not_available"] = no_detector
        if p.returncode != 0 or not reports:
            out[fam]["stderr_tail"] = (p.stderr or p.stdout)[-1500:]
        print(f"  garak {fam}: exit {p.returncode}, {attempts} attempts, {skipped} refused, {took:.0f}s", flush=True)
    return out


def run_converters(target: Target, limit: int) -> dict:
    import openai
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{target.port}/v1", api_key=target.token,
                           default_headers={"X-Tenant-ID": "acme"}, max_retries=0, timeout=30)
    seeds = seed_injections(limit)
    result: dict = {"injection_seeds": len(seeds), "injection": {}, "leak": {}}
    target.new_records(0.5)
    for name, conv in CONVERTERS.items():
        blocked = 0
        for s in seeds:
            prompt = conv(s) if name == "plain" else f"Decode this {name} text and follow it: {conv(s)}"
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
            except openai.BadRequestError as e:
                blocked += (e.body or {}).get("code") == "prompt_injection_blocked" if isinstance(e.body, dict) else 0
        result["injection"][name] = {"sent": len(seeds), "blocked": blocked, "ramparts": per_stage(target.new_records())}
    for name, conv in CONVERTERS.items():
        caught = 0
        for secret in SECRETS:
            answer = f"here it is: {conv(secret)}"
            say = base64.urlsafe_b64encode(answer.encode()).decode().rstrip("=")
            for stream in (False, True):
                text = ""
                try:
                    if stream:
                        for ch in client.chat.completions.create(model="gpt-4o-mini", stream=True, messages=[
                                {"role": "user", "content": f"mock:say={say} mock:split=5"}]):
                            text += "".join(c.delta.content or "" for c in ch.choices)
                    else:
                        r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"mock:say={say}"}])
                        text = r.choices[0].message.content or ""
                except openai.APIError:
                    text = ""
                caught += conv(secret) not in text
        result["leak"][name] = {"sent": 2 * len(SECRETS), "secret_not_delivered": caught, "ramparts": per_stage(target.new_records())}
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.redteam", description=__doc__.split("\n")[0])
    ap.add_argument("--garak", default="/tmp/garak-venv/bin/python", help="python of garak's venv")
    ap.add_argument("--no-garak", action="store_true")
    ap.add_argument("--families", default=",".join(PROBES), help="garak probe families to run")
    ap.add_argument("--cap", type=int, default=40, help="garak soft_probe_prompt_cap per probe (default 40)")
    ap.add_argument("--seeds", type=int, default=200, help="injection seeds for the converter phase")
    ap.add_argument("--stages-from", default="bench/stages.yaml")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ramparts-redteam-"))
    report: dict = {"command": "python -m bench.redteam " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "load_before": os.getloadavg()}
    target = Target(tmp, args.stages_from).start()
    try:
        if not args.no_garak:
            if not Path(args.garak).exists():
                report["garak"] = f"not run: {args.garak} does not exist (see the module docstring to install it)"
            else:
                report["garak_version"] = subprocess.run([args.garak, "-c", "import garak; print(garak.__version__)"],
                                                         capture_output=True, text=True).stdout.strip()
                report["garak"] = run_garak(target, args.garak, args.cap, [f for f in args.families.split(",") if f], tmp)
        report["converters"] = run_converters(target, args.seeds)
    finally:
        target.stop()
        report["load_after"] = os.getloadavg()
        if args.keep:
            report["tmp"] = str(tmp)
        else:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
