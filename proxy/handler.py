"""The one catch-all proxy handler.

Not aiohttp middlewares: they cannot see response chunks. One path for every
route: framing checks, authentication (before the body is read), strict body
parsing, the stage chain, the upstream call, and the response as events.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from proxy.pipeline.deny import Deny, DenyError, bad_request, unavailable
from proxy.pipeline.exchange import Exchange
from proxy.upstream import EgressBlocked, UpstreamError, UpstreamResponse, UpstreamStalled, UpstreamTimeout, upstream_headers
from proxy.wire.event import Event
from proxy.wire.headers import client_response_headers
from proxy.wire.openai import text_length, usage_of
from proxy.wire.provider_error import client_error, scrub
from proxy.wire.request_schema import SchemaRejected, validate_request
from proxy.wire.sse import SSEDecoder, SSEError, comment, encode_event
from proxy.wire.strict_json import JSONRejected, loads_strict

log = logging.getLogger("ramparts.handler")

PROXY_ROUTES = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}
JSON = "application/json"


class ClientGone(Exception):
    """Writing to the client failed: it disconnected."""


def error_response(deny: Deny, request_id: str, close: bool = False) -> web.Response:
    headers = {"Content-Type": JSON, "X-Request-ID": request_id, **deny.headers}
    resp = web.Response(status=deny.status, body=orjson.dumps(deny.body()), headers=headers)
    if close:
        resp.force_close()  # a Connection: close header alone does not make aiohttp close
    return resp


def sse_error(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    """A final SSE event carrying an OpenAI error object: the SDKs raise on it."""
    return b"data: " + orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}}) + b"\n\n"


class ProxyHandler:
    def __init__(self, state) -> None:
        self.st = state  # proxy.app.AppState
        # the audit stage, if any: refusals before an exchange exists are audited too (bounded)
        self._audit = next((s for s in state.chain.stages if hasattr(s, "audit_refusal")), None)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        st = self.st
        request_id = os.urandom(16).hex()  # 128 random bits like uuid4().hex, a sixth of the cost
        path = request.raw_path.partition("?")[0]
        route = PROXY_ROUTES.get(path)
        if route is None and path == "/v1/models":
            route = "models"
        local = st.local_routes.get(path) if route is None else None
        framing = self._framing(request, route, local)
        if framing is not None:
            st.metrics.requests.labels("-", str(framing.status), *st.metrics.tenant(None)).inc()
            return self._refused(request, framing, route, request_id, close=framing.status != 404)
        if st.draining:
            return self._refused(request, unavailable("the proxy is shutting down; retry", "draining"), route, request_id)
        if st.in_flight >= st.policy.server.max_in_flight:  # shed load before any work (SECURITY_TESTS B8)
            return self._refused(request, unavailable("the proxy is at its limit of concurrent requests; retry", "overloaded"), route, request_id)
        if st.memory_pressure:  # RSS above server.max_rss_mib (B8): in-flight requests finish, new ones wait
            return self._refused(request, unavailable("the proxy is above its memory soft limit; retry", "memory_pressure"), route, request_id)
        ex = Exchange(request_id=request_id, route=route or "local", method=request.method, path=path,
                      client_headers=request.headers, policy=st.policy, peer=request.remote or "")
        if local is not None:
            ex.state["required_scope"] = local[1]
        st.metrics.in_flight.inc()
        st.in_flight += 1
        response: web.StreamResponse | None = None
        try:
            response = await self._run(request, ex, local)
            if ex.outcome == "pending":
                ex.outcome = "ok" if response.status < 400 else ("denied" if ex.denied else "error")
            return response
        except asyncio.CancelledError:
            ex.outcome = "client_disconnect"
            raise
        except Exception:
            log.exception("unhandled error (request %s)", request_id)
            ex.outcome = "error"
            if ex.headers_sent:
                raise
            response = error_response(Deny(500, "internal proxy error", "server_error", "internal_error"), request_id)
            return response
        finally:
            ex.finished = time.perf_counter()
            try:
                await st.chain.run_complete(ex)
            finally:  # counted even when the handler is cancelled again meanwhile
                st.in_flight -= 1
                st.metrics.in_flight.dec()
                status = response.status if response is not None else 499
                m = st.metrics
                m.requests.labels(ex.route, str(status), *m.tenant(ex.tenant_id)).inc()
                m.duration.labels(ex.route).observe(ex.finished - ex.started)
                m.overhead.labels(ex.route).observe(ex.proxy_seconds)
                if st.in_flight == 0 and st.idle is not None:
                    st.idle.set()

    def _refused(self, request: web.Request, deny: Deny, route: str | None, request_id: str, close: bool = False) -> web.Response:
        """Refused before an exchange exists: audited as a `refusal` record (proxy/audit/refusal.py), then answered."""
        if self._audit is not None:
            self._audit.audit_refusal(request_id=request_id, status=deny.status, code=deny.code, route=route or "-",
                                      method=request.method, client=request.remote, headers=request.headers)
        return error_response(deny, request_id, close=close)

    # ------------------------------------------------------------------ request

    def _framing(self, request: web.Request, route: str | None, local) -> Deny | None:
        """What must be refused before anything else runs (SECURITY_TESTS A, C1, C7, D1)."""
        if request.method == "CONNECT" or not request.raw_path.startswith("/"):
            return bad_request("absolute-form request targets and CONNECT are not accepted", "bad_request_target")
        te = request.headers.getall("Transfer-Encoding", [])
        if te and [v.strip().lower() for v in te] != ["chunked"]:
            return bad_request("the only transfer coding accepted is a single 'chunked'", "bad_transfer_encoding")
        if "Upgrade" in request.headers or request.version != aiohttp.HttpVersion11 and request.version != aiohttp.HttpVersion10:
            return bad_request("protocol upgrades are not supported", "upgrade_refused")
        if route is None and local is None:
            return Deny(404, f"no such endpoint: {request.method} {request.raw_path[:128]}", "invalid_request_error", "not_found")
        want = "GET" if route == "models" or local is not None else "POST"
        if request.method != want:
            return Deny(405, f"use {want} for this endpoint", "invalid_request_error", "method_not_allowed", {"Allow": want})
        return None

    async def _read_body(self, request: web.Request) -> bytes | Deny:
        server = self.st.policy.server
        enc = request.headers.getall("Content-Encoding", [])
        if any(e.strip().lower() not in ("", "identity") for e in enc):
            return Deny(415, "request bodies must not be content-encoded", "invalid_request_error", "unsupported_encoding")
        if request.content_type != JSON:
            return Deny(415, "the request body must be application/json", "invalid_request_error", "unsupported_media_type")
        if request.content_length is not None and request.content_length > server.max_body_bytes:
            return Deny(413, f"the request body is larger than {server.max_body_bytes} bytes", "invalid_request_error", "body_too_large")
        if request.content.is_eof():  # the whole body is already here (small JSON): no deadline to arm
            body = request.content.read_nowait()
            if len(body) <= server.max_body_bytes:
                return body
            return Deny(413, f"the request body is larger than {server.max_body_bytes} bytes", "invalid_request_error", "body_too_large")
        buf = bytearray()
        try:
            async with asyncio.timeout(server.body_timeout_s):
                while chunk := await request.content.readany():
                    buf += chunk
                    if len(buf) > server.max_body_bytes:
                        return Deny(413, f"the request body is larger than {server.max_body_bytes} bytes", "invalid_request_error", "body_too_large")
        except TimeoutError:
            return Deny(408, "the request body was not received in time", "invalid_request_error", "body_timeout")
        return bytes(buf)

    async def _run(self, request: web.Request, ex: Exchange, local) -> web.StreamResponse:
        st = self.st
        deny = await st.chain.authenticate(ex)
        if deny is not None:
            ex.outcome = "denied"
            ex.state["refusal_status"] = deny.status  # the audit stage's refusal window counts by status
            return error_response(deny, ex.request_id)
        if ex.route == "models":
            return self._models(ex)
        if local is not None:
            stage, _ = local
            status, payload = await stage.serve_local(ex, dict(request.query))
            return web.Response(status=status, body=orjson.dumps(payload), headers={"Content-Type": JSON, "X-Request-ID": ex.request_id})
        raw = await self._read_body(request)
        if isinstance(raw, Deny):
            ex.outcome = "denied"
            ex.denied = ("handler", raw.code or "")
            return error_response(raw, ex.request_id, close=raw.status in (408, 413, 415))
        try:
            body = loads_strict(raw, st.policy.server.max_json_depth)
            validate_request(ex.route, body)
        except (JSONRejected, SchemaRejected) as e:
            ex.outcome = "denied"
            ex.denied = ("handler", e.code)
            return error_response(bad_request(str(e), e.code), ex.request_id)
        ex.body = body
        ex.stream = body.get("stream") is True
        deny = await st.chain.run_request(ex, start=1)
        if deny is not None:
            ex.outcome = "denied"
            return error_response(deny, ex.request_id)
        return await self._forward(request, ex)

    def _models(self, ex: Exchange) -> web.Response:
        pol = self.st.policy.model
        data = [{"id": m, "object": "model", "created": 0, "owned_by": pol.models[m].provider or "ramparts"}
                for m in ex.tenant.plan.models]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                            headers={"Content-Type": JSON, "X-Request-ID": ex.request_id})

    # ------------------------------------------------------------------ upstream

    async def _forward(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        st = self.st
        payload = dict(ex.body)
        payload["model"] = ex.provider.upstream_model
        data = orjson.dumps(payload)
        headers = upstream_headers(ex.upstream_headers, ex.request_id)
        ex.upstream_started = time.perf_counter()
        ex.proxy_seconds += ex.upstream_started - ex.started
        provider = ex.provider.name
        try:
            resp = await st.upstream.post(ex.upstream_url, headers, data)
        except EgressBlocked as e:
            self._fault(ex, "egress_blocked")
            ex.outcome = "denied"
            ex.denied = ("egress", "resolved_address_blocked")
            return error_response(Deny(403, str(e), "permission_error", "egress_denied"), ex.request_id)
        except UpstreamTimeout:
            self._fault(ex, "timeout")
            ex.outcome = "upstream_error"
            return error_response(Deny(504, "the provider did not answer in time", "upstream_error", "upstream_timeout"), ex.request_id)
        except UpstreamError as e:
            self._fault(ex, "connect")
            ex.outcome = "upstream_error"
            log.warning("upstream %s failed: %s", provider, type(e).__name__)
            return error_response(Deny(502, "the provider could not be reached", "upstream_error", "upstream_unavailable"), ex.request_id)
        try:
            ex.first_byte_at = time.perf_counter()
            st.metrics.upstream_ttfb.labels(provider).observe(ex.first_byte_at - ex.upstream_started)
            ex.response_status = resp.status
            ex.response_headers = client_response_headers(resp.headers)
            t = time.perf_counter()
            deny = await st.chain.run_response_headers(ex)
            ex.proxy_seconds += time.perf_counter() - t
            if deny is not None:
                ex.outcome = "denied"
                return error_response(deny, ex.request_id)
            if 300 <= resp.status < 400:
                self._fault(ex, "redirect")
                ex.outcome = "upstream_error"
                return error_response(Deny(502, "the provider answered with a redirect, which is never followed", "upstream_error", "upstream_redirect"), ex.request_id)
            if resp.headers.get("Content-Encoding", "identity").lower() != "identity":
                self._fault(ex, "encoding")
                ex.outcome = "upstream_error"
                return error_response(Deny(502, "the provider sent an encoded body although identity was asked for", "upstream_error", "upstream_bad_response"), ex.request_id)
            if resp.status >= 400:
                return await self._upstream_error(ex, resp)
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ex.stream and ctype == "text/event-stream":
                return await self._stream(request, ex, resp)
            if not ex.stream and ctype == JSON:
                return await self._body(ex, resp)
            self._fault(ex, "content_type")
            ex.outcome = "upstream_error"
            return error_response(Deny(502, f"the provider answered with an unexpected content type ({ctype[:64] or 'none'})", "upstream_error", "upstream_bad_response"), ex.request_id)
        finally:
            resp.close()  # a cancelled or finished call closes the upstream socket at once

    def _touches(self, ex: Exchange) -> bool:
        """Whether any stage has work on this exchange's response (asked once, after its request hooks)."""
        chain = self.st.chain
        return chain.touches_events and chain.touches_events_of(ex)

    def _fault(self, ex: Exchange, kind: str) -> None:
        """Count an upstream failure and name it in the exchange's decisions (the audit record's reason)."""
        self.st.metrics.upstream_errors.labels(ex.provider.name, kind).inc()
        ex.decide("upstream", "error", kind=kind)

    async def _read_all(self, resp: UpstreamResponse, cap: int) -> bytes | None:
        """The whole body, or None if it is over `cap`, cut short, reset or stalled (then a 502, not a 500)."""
        buf = bytearray()
        try:
            while chunk := await resp.readany():
                buf += chunk
                if len(buf) > cap:
                    return None
        except UpstreamError:
            return None
        return bytes(buf)

    def _observe(self, ex: Exchange, ev: Event) -> None:
        """Read usage, completion id and output size from what the provider sent (before stages change it)."""
        payload = ev.payload
        if not isinstance(payload, dict):
            return
        if ex.completion_id is None and isinstance(payload.get("id"), str):
            ex.completion_id = payload["id"][:128]
        if "usage" in payload:
            u = usage_of(payload)
            if u is not None:
                ex.usage.prompt_tokens, ex.usage.completion_tokens = u
                ex.usage.reported = True
        ex.usage.streamed_chars += text_length(payload)

    async def _upstream_error(self, ex: Exchange, resp: UpstreamResponse) -> web.Response:
        st = self.st
        self._fault(ex, f"http_{resp.status // 100}xx" if resp.status != 429 else "http_429")
        ex.outcome = "upstream_error"
        raw = await self._read_all(resp, 65536)
        payload = None
        if raw:
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError:
                payload = None
        status, body = client_error(resp.status, payload, (ex.provider.api_key or "",))
        ev = Event(kind="body", data=orjson.dumps(body).decode())
        try:
            out = await st.chain.run_event(ex, ev) + await st.chain.run_end(ex) if self._touches(ex) else [ev]
        except DenyError as e:
            return error_response(e.deny, ex.request_id)
        final = next((e for e in out if e.kind == "body"), ev)
        headers = {"Content-Type": JSON, "X-Request-ID": ex.request_id}
        if status in (429, 503):
            ra = resp.headers.get("Retry-After", "")
            headers["Retry-After"] = ra if ra.isdigit() and len(ra) <= 6 else "1"
        return web.Response(status=status, body=scrub(final.data or "").encode(), headers=headers)

    async def _body(self, ex: Exchange, resp: UpstreamResponse) -> web.Response:
        st = self.st
        raw = await self._read_all(resp, st.policy.server.max_upstream_body_bytes)
        ev = None
        if raw is not None:
            ev = Event(kind="body", data=raw.decode("utf-8", "replace"), raw=raw)
        if ev is None or not isinstance(ev.payload, dict):
            self._fault(ex, "bad_body")
            ex.outcome = "upstream_error"
            return error_response(Deny(502, "the provider's answer was cut short, not valid JSON or too large", "upstream_error", "upstream_bad_response"), ex.request_id)
        self._observe(ex, ev)
        t = time.perf_counter()
        try:
            out = await st.chain.run_event(ex, ev) + await st.chain.run_end(ex) if self._touches(ex) else [ev]
        except DenyError as e:
            ex.outcome = "denied"
            return error_response(e.deny, ex.request_id)
        finally:
            ex.proxy_seconds += time.perf_counter() - t
        final = next((e for e in out if e.kind == "body"), None)
        if final is None:
            ex.outcome = "denied"
            return error_response(Deny(500, "the response was withheld by policy", "server_error", "withheld"), ex.request_id)
        body = final.raw if final.raw is not None else final.data.encode()
        headers = {**ex.response_headers, "Content-Type": JSON, "X-Request-ID": ex.request_id, **ex.extra_response_headers}
        ex.outcome = "ok"
        return web.Response(status=200, body=body, headers=headers)

    async def _stream(self, request: web.Request, ex: Exchange, resp: UpstreamResponse) -> web.StreamResponse:
        st = self.st
        server = st.policy.server
        response = web.StreamResponse(status=200, headers={
            **ex.response_headers, "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "X-Request-ID": ex.request_id, "X-Accel-Buffering": "no", **ex.extra_response_headers})
        await response.prepare(request)
        ex.headers_sent = True
        st.metrics.in_flight_streams.inc()
        decoder = SSEDecoder(max_line=server.max_upstream_line_bytes)
        chain = st.chain
        touch = self._touches(ex)
        done_events: list[Event] = []
        keepalive = server.sse_keepalive_s or None
        shutdown_task = asyncio.ensure_future(st.shutdown.wait())
        # The pending read waits under one deadline (keep-alive); shutdown moves it to now. Cheaper
        # than a task plus asyncio.wait per read, which cost more than the rest of the per-chunk work.
        pending: list[asyncio.Timeout] = []
        loop = asyncio.get_running_loop()

        def on_shutdown(_: asyncio.Future) -> None:
            if pending and not pending[0].expired():
                pending[0].reschedule(loop.time())
        shutdown_task.add_done_callback(on_shutdown)

        async def write(data: bytes) -> None:
            try:
                await response.write(data)
            except (ConnectionError, aiohttp.ClientConnectionResetError) as e:
                raise ClientGone() from e

        async def through(events: list[Event]) -> bytes:
            # The events of one read pass the chain together (Chain.run_events: a stage may work on
            # them at once, e.g. leak scans their text in one pass); a malformed one ends the read.
            good: list[Event] = []
            bad = None
            for ev in events:
                if ev.data is None and ev.comment is None:
                    continue  # a data-less frame (only retry:/id:/event:) makes openai-python fail
                if ev.data is not None and not ev.is_done and not isinstance(ev.payload, dict):
                    bad = SSEError("an event's data is not a JSON object")  # never relay what no stage could read
                    break
                self._observe(ex, ev)
                good.append(ev)
            try:
                out = (await chain.run_events(ex, good) if touch else good) if good else ()
            except DenyError as e:
                # Events of this read that every stage passed before the deny are the client's (and
                # charged): they go out before the error event.
                e.cleared = b"".join(encode_event(o) for o in getattr(e, "passed", None) or () if not o.is_done)
                raise
            parts = []
            for o in out:
                if o.is_done:
                    done_events.append(o)  # [DONE] waits until every stage has flushed
                else:
                    parts.append(encode_event(o))
            if bad is not None:
                bad.cleared = b"".join(parts)  # the events before the malformed one go out first
                raise bad
            return b"".join(parts)

        try:
            while True:
                if shutdown_task.done():
                    ex.outcome = "cut_stream"
                    await write(sse_error("the proxy is shutting down; the stream was cut", "server_error", "shutting_down"))
                    break
                chunk = resp.read_nowait()  # already buffered: no deadline to arm
                if not chunk and not resp.at_eof():
                    try:
                        async with asyncio.timeout(keepalive) as deadline:
                            pending.append(deadline)
                            chunk = await resp.readany()
                    except TimeoutError:
                        if not deadline.expired():
                            raise
                        if not shutdown_task.done():
                            await write(comment("keep-alive"))
                        continue
                    finally:
                        pending.clear()
                if not chunk:
                    break
                t = time.perf_counter()
                out = await through(decoder.feed(chunk))
                ex.proxy_seconds += time.perf_counter() - t
                if out:
                    await write(out)
            if ex.outcome != "cut_stream":
                t = time.perf_counter()
                out = await through(decoder.flush())
                end = await chain.run_end(ex) if touch else []
                out += b"".join(encode_event(e) for e in end if not e.is_done)
                ex.proxy_seconds += time.perf_counter() - t
                if done_events:
                    ex.outcome = "ok"
                    await write(out + b"".join(encode_event(e) for e in done_events[:1]))
                else:
                    ex.outcome = "upstream_error"
                    self._fault(ex, "truncated")
                    await write(out + sse_error("the provider ended the stream without [DONE]; the answer is incomplete", "upstream_error", "upstream_truncated"))
        except DenyError as e:
            ex.outcome = "cut_stream"
            await self._try_write(write, getattr(e, "cleared", b"") + sse_error(e.deny.message, e.deny.type, e.deny.code))
        except SSEError as e:
            ex.outcome = "upstream_error"
            self._fault(ex, "bad_sse")
            await self._try_write(write, getattr(e, "cleared", b"") + sse_error(
                f"the provider's stream was malformed: {e}", "upstream_error", "upstream_bad_response"))
        except (UpstreamStalled, asyncio.TimeoutError):
            ex.outcome = "upstream_error"
            self._fault(ex, "stall")
            await self._try_write(write, sse_error("the provider stopped sending; the answer is incomplete", "upstream_error", "upstream_timeout"))
        except ClientGone:
            ex.outcome = "client_disconnect"
        except UpstreamError:
            ex.outcome = "upstream_error"
            self._fault(ex, "reset")
            await self._try_write(write, sse_error("the provider's connection was reset; the answer is incomplete", "upstream_error", "upstream_reset"))
        finally:
            shutdown_task.cancel()
            st.metrics.in_flight_streams.dec()
        if ex.outcome != "client_disconnect":
            try:
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                ex.outcome = "client_disconnect"
        return response

    @staticmethod
    async def _try_write(write, data: bytes) -> None:
        try:
            await write(data)
        except ClientGone:
            pass
