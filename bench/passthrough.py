"""The floor: a bare aiohttp pass-through that forwards the body and streams the response.

No auth, no parsing, no policy: aiohttp's server and client, with the client set
up as a proxy's should be (no redirects, no decompression, no environment proxies,
connect and read deadlines, a pool of keep-alive connections).

    python -m bench.passthrough --listen 127.0.0.1:18100 --upstream http://127.0.0.1:18081
"""

from __future__ import annotations

import argparse

from aiohttp import web

import aiohttp

UPSTREAM_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                    "Accept-Encoding": "identity", "User-Agent": "passthrough/0.1", "Authorization": "Bearer sk-bench"}


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    session_key = web.AppKey("session", object)

    async def lifecycle(app: web.Application):
        app[session_key] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=512, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=60), trust_env=False,
            auto_decompress=False, read_bufsize=2**16, cookie_jar=aiohttp.DummyCookieJar())
        yield
        await app[session_key].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with app[session_key].post(upstream + request.path, data=body, headers=UPSTREAM_HEADERS,
                                         allow_redirects=False) as up:
            ctype = up.headers.get("Content-Type", "application/json")
            if not ctype.startswith("text/event-stream"):
                return web.Response(status=up.status, body=await up.read(), headers={"Content-Type": ctype})
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": ctype})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/{tail:.*}", forward)
    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:18100")
    ap.add_argument("--upstream", required=True, help="base URL of the provider, e.g. http://127.0.0.1:18081")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    import uvloop
    uvloop.install()
    web.run_app(build_app(args.upstream.rstrip("/")), host=host, port=int(port), access_log=None,
                print=lambda *a: print(f"passthrough on http://{args.listen}", flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
