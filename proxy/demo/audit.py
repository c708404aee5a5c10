"""Demo scene: every call leaves a signed, hash-chained record; the verifier catches an edit.

Needs the audit stage LAST in the demo pipeline (`- {type: audit}`) and the
runner's data dir (ctx.data_dir, default data/demo): records go to
<data_dir>/audit, the writer key is generated under <data_dir>/audit/keys.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import httpx
import openai
import orjson

from proxy.audit import layout
from proxy.audit.keyring import Keyring
from proxy.audit.verify import EXIT_CODES, verify_dir


def _entries(audit_dir: Path) -> list[dict]:
    out = []
    for chain in layout.chain_dirs(audit_dir / layout.RECORDS):
        for f in layout.record_files(chain):
            out += [orjson.loads(line) for _, line, complete in layout.iter_lines(f) if complete]
    return out


async def _wait_for(audit_dir: Path, request_ids: list[str]) -> dict[str, dict]:
    """The sink writes in the background: wait (briefly) until these requests' records are on disk."""
    found: dict[str, dict] = {}
    for _ in range(100):
        found = {e["request_id"]: e for e in _entries(audit_dir) if e.get("request_id") in request_ids}
        if len(found) == len(request_ids):
            return found
        await asyncio.sleep(0.05)
    raise SystemExit(f"demo: audit records of {request_ids} not found under {audit_dir} (found {sorted(found)})")


async def scene(ctx) -> None:
    ctx.heading("Audit: signed, hash-chained records and an offline verifier")
    audit_dir = Path(getattr(ctx, "data_dir", None) or "data/demo") / "audit"

    raw = await ctx.client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[
        {"role": "user", "content": "Hi, I'm Jane (jane.roe@example.org). Where is my order?"}])
    raw.parse()
    ids = [raw.headers["x-request-id"]]
    try:
        await ctx.client_for("acme", header_tenant="globex").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "let me read globex's data"}])
        raise SystemExit("demo: a wrong tenant header was accepted")
    except openai.PermissionDeniedError as e:
        ids.append(e.response.headers["x-request-id"])
    found = await _wait_for(audit_dir, ids)
    ok, denied = found[ids[0]], found[ids[1]]
    keep = ("seq", "time", "tenant", "claimed_tenant", "subject", "jti", "route", "model", "provider", "status",
            "outcome", "denied", "usage", "prompt_digest", "kid", "prev", "hash")
    ctx.say("what the audit log holds for the last two calls (digests, never the prompt)",
            allowed_call={k: ok.get(k) for k in keep}, denied_call={k: denied.get(k) for k in keep},
            raw_email_in_log="jane.roe@example.org" in "".join(orjson.dumps(e).decode() for e in _entries(audit_dir)))

    async with httpx.AsyncClient(base_url=ctx.base_url, timeout=10) as http:
        headers = {"Authorization": f"Bearer {ctx.token('acme', ['ai:audit'])}", "X-Tenant-ID": "acme"}
        r = await http.get("/audit", params={"limit": "3"}, headers=headers)
        body = r.json()
        ids.append(r.headers["x-request-id"])
        ctx.say("GET /v1/audit as acme's compliance officer (scope ai:audit)", status=r.status_code,
                records=len(body.get("data", [])), tenants_seen=sorted({d["tenant"] for d in body.get("data", [])}))
        r = await http.get("/audit", headers={"Authorization": f"Bearer {ctx.token('acme')}", "X-Tenant-ID": "acme"})
        ids.append(r.headers["x-request-id"])
        ctx.say("GET /v1/audit with an ordinary token (no ai:audit)", status=r.status_code)
    await _wait_for(audit_dir, ids)  # the two queries are audited too; let the writer settle
    await asyncio.sleep(0.1)  # and whatever earlier scenes left in its queue

    keyring = Keyring.from_dir(audit_dir / layout.KEYS)
    report = verify_dir(audit_dir, keyring)
    ctx.say(f"$ ramparts audit verify {audit_dir} --keys {audit_dir / layout.KEYS}",
            status=report.status, exit_code=report.exit_code,
            chains=[{"chain": c.chain, "entries": c.entries, "head": c.head} for c in report.chains])
    if report.status != "OK":
        raise SystemExit("demo: the audit log did not verify")

    with tempfile.TemporaryDirectory(prefix="ramparts-demo-tampered-") as tmp:
        copy = Path(tmp) / "audit"
        shutil.copytree(audit_dir, copy, ignore=shutil.ignore_patterns(layout.SUBJECT_KEYS, ".lock"))
        chain = layout.chain_dirs(copy / layout.RECORDS)[0]
        path = layout.record_files(chain)[-1]
        lines = path.read_bytes().splitlines(keepends=True)
        idx = next(i for i, line in enumerate(lines) if orjson.loads(line).get("request_id") == denied["request_id"])
        forged = orjson.loads(lines[idx])
        forged["outcome"], forged["denied"] = "ok", None  # hide a denial
        lines[idx] = orjson.dumps(forged) + b"\n"
        path.write_bytes(b"".join(lines))
        bad = verify_dir(copy, keyring)
        first = bad.chains[0].findings[0] if bad.chains[0].findings else None
        ctx.say("the same log with one record edited (a denial made to look allowed)",
                status=bad.status, exit_code=EXIT_CODES[bad.status],
                finding=None if first is None else {"seq": first.seq, "file": first.file, "line": first.line, "detail": first.detail})
        if bad.status != "TAMPER":
            raise SystemExit("demo: the tampered log was not caught")
