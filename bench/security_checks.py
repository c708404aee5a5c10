"""What the core's request checks cost per request: JWT verification and strict body parsing.

    .venv/bin/python -m bench.security_checks [--n 5000] [--runs 5]

Rows, each the median over --runs runs of the mean per call:
- PyJWT `jwt.decode` with the same key/options (baseline) vs `JwtVerifier.verify`
  (adds strict re-parse of header and claims for duplicate keys, kid/typ/tenant/age checks);
- `orjson.loads` (baseline) vs `loads_strict` + `validate_request` on a typical chat body.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import jwt
import orjson

from proxy.auth.verifier import JwtVerifier
from proxy.config.policy import AuthConfig
from proxy.devtoken import mint
from proxy.wire.request_schema import validate_request
from proxy.wire.strict_json import loads_strict

SECRET = b"bench-secret-that-is-at-least-32-bytes!!"
CFG = AuthConfig.model_validate({"issuer": "https://issuer.test", "audience": "ramparts", "algorithms": ["HS256"], "key": {"from_env": "UNUSED"}})
BODY = orjson.dumps({
    "model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512, "stream": True, "stream_options": {"include_usage": True},
    "messages": [{"role": "system", "content": "You are a support assistant. Answer briefly and cite the policy section."}]
    + [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Message {i}: " + "the quarterly report says revenue grew; " * 8} for i in range(6)],
})


def per_call(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


async def per_call_async(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - t) / n


async def main_async(n: int, runs: int) -> list[tuple[str, float, float | None]]:
    token = mint(SECRET, tenant="acme", scopes=["ai:completion"], issuer="https://issuer.test")

    async def lookup(kid):
        return SECRET
    verifier = JwtVerifier(CFG, lookup)
    opts = {"require": ["exp", "iss", "aud", "sub"]}
    rows = {"jwt.decode (PyJWT, baseline)": [], "JwtVerifier.verify": [], "orjson.loads (baseline)": [], "loads_strict + validate_request": []}
    for _ in range(runs):
        rows["jwt.decode (PyJWT, baseline)"].append(per_call(lambda: jwt.decode(token, SECRET, algorithms=["HS256"], audience="ramparts",
                                                                                 issuer="https://issuer.test", leeway=30, options=opts), n))
        rows["JwtVerifier.verify"].append(await per_call_async(lambda: verifier.verify(token), n))
        rows["orjson.loads (baseline)"].append(per_call(lambda: orjson.loads(BODY), n))
        rows["loads_strict + validate_request"].append(per_call(lambda: validate_request("chat", loads_strict(BODY)), n))
    med = {k: statistics.median(v) for k, v in rows.items()}
    return [
        ("jwt.decode (PyJWT, baseline)", med["jwt.decode (PyJWT, baseline)"], None),
        ("JwtVerifier.verify", med["JwtVerifier.verify"], med["JwtVerifier.verify"] / med["jwt.decode (PyJWT, baseline)"]),
        (f"orjson.loads (baseline), {len(BODY)} B body", med["orjson.loads (baseline)"], None),
        ("loads_strict + validate_request", med["loads_strict + validate_request"], med["loads_strict + validate_request"] / med["orjson.loads (baseline)"]),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.security_checks")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    rows = asyncio.run(main_async(args.n, args.runs))
    print(f"| case | µs per call (median of {args.runs} runs × {args.n}) | vs baseline |")
    print("|---|---|---|")
    for name, sec, ratio in rows:
        print(f"| {name} | {sec * 1e6:.1f} | {'' if ratio is None else f'{ratio:.2f}x'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
