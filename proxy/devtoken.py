"""`ramparts token`: mint a development HS256 JWT (for the demo and local trials only)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

import jwt

from proxy.auth.verifier import WeakKey, check_hmac_key


def mint(secret: bytes, *, tenant: str, subject: str = "dev-user", scopes: list[str] | tuple[str, ...] = ("ai:completion",),
         issuer: str = "https://issuer.local", audience: str = "ramparts", ttl_s: int = 3600,
         extra: dict | None = None, headers: dict | None = None) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "sub": subject, "tenant": tenant, "scope": " ".join(scopes),
              "iat": now, "nbf": now, "exp": now + ttl_s, "jti": uuid.uuid4().hex, **(extra or {})}
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ramparts token", description=__doc__)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--subject", default="dev-user")
    ap.add_argument("--scope", action="append", default=None, help="repeatable; default ai:completion")
    ap.add_argument("--issuer", default="https://issuer.local")
    ap.add_argument("--audience", default="ramparts")
    ap.add_argument("--ttl", type=int, default=3600)
    ap.add_argument("--secret-env", default="RAMPARTS_JWT_SECRET", help="env var holding the HS256 secret")
    args = ap.parse_args(argv)
    secret = os.environ.get(args.secret_env, "").encode()
    try:
        check_hmac_key(["HS256"], secret)
    except WeakKey as e:
        print(f"ramparts token: {args.secret_env}: {e}", file=sys.stderr)
        return 2
    print(mint(secret, tenant=args.tenant, subject=args.subject, scopes=args.scope or ["ai:completion"],
               issuer=args.issuer, audience=args.audience, ttl_s=args.ttl))
    return 0
