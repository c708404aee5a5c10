"""The audit sink: a background writer that seals, signs and appends entries.

The request path only appends to an in-memory deque (`submit`); one task takes
batches and does the CPU and disk work in a thread (`asyncio.to_thread`), so
the event loop never waits on JCS, Ed25519 or fsync. Entries are sealed into
one chain per writer: seq, prev, kid, hash, sig. A batch is appended
atomically (on error the file is truncated back and the batch retried), so a
failed write never leaves a gap or a duplicate; a crash leaves at most a torn
last line, moved aside at the next start, after which the chain resumes.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import fcntl
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import orjson

from proxy.audit import layout, merkle
from proxy.audit.canonical import GENESIS, entry_hash
from proxy.audit.content import SubjectKeys
from proxy.audit.keyring import Signer
from proxy.audit.seal import InlineSealer, Sealed, seal
from proxy.audit.record import utc_now

log = logging.getLogger("ramparts.audit")
MAX_BATCH = 512
LINGER_S = 0.005  # how long the writer waits for more records before writing a small batch


class SinkCorrupt(RuntimeError):
    """The chain's last file ends in a complete but unreadable line: not a crash artefact."""


@dataclass
class WriterOptions:
    fsync: str = "batch"  # batch | interval | off
    fsync_interval_s: float = 1.0
    queue_size: int = 10_000  # above this depth the sink reports overload
    hard_limit: int = 20_000  # beyond this a record is dropped, counted and logged (never silently)
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0


@dataclass
class _Pending:
    body: dict[str, Any]
    # Runs in the writer thread before sealing: fills digest fields and returns plaintext
    # content to encrypt for body["subject"] (None: keep nothing). Never written as is.
    finish: Callable[[dict[str, Any]], Any] | None = None


@dataclass
class _ChainState:
    seq: int = 0  # next seq
    head: str = GENESIS
    day: str | None = None
    file: Path | None = None
    fd: int | None = None
    period: list[bytes] = field(default_factory=list)  # Merkle leaves since the last checkpoint
    period_first: int = 0
    last_checkpoint: str = GENESIS
    last_checkpoint_at: float = field(default_factory=time.monotonic)
    last_fsync: float = field(default_factory=time.monotonic)
    dirty: bool = False


def default_chain_id() -> str:
    host = socket.gethostname() or "ramparts"
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in host)[:100] or "ramparts"


def _today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


class AuditWriter:
    def __init__(self, directory: Path, chain_id: str | None, writer_signer: Signer,
                 tenant_signers: dict[str, Signer], options: WriterOptions, metrics: Any = None,
                 subject_keys: SubjectKeys | None = None, clock_day: Callable[[], str] = _today,
                 sealer: Any = None, checkpoints_dir: Path | None = None) -> None:
        self.dir = Path(directory)
        # Checkpoints go to their own directory (default <dir>/checkpoints): mount it elsewhere, ship it.
        self.checkpoints_dir = Path(checkpoints_dir) if checkpoints_dir is not None else self.dir / layout.CHECKPOINTS
        self.requested_chain = chain_id
        self.chain_id = chain_id or default_chain_id()
        self.signer = writer_signer
        self.tenant_signers = tenant_signers
        self.opt = options
        self.metrics = metrics
        self.subject_keys = subject_keys
        self.sealer = sealer or InlineSealer(writer_signer, tenant_signers, subject_keys)
        self._day = clock_day
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._io = asyncio.Lock()  # one thread job at a time touches the chain state
        self._state = _ChainState()
        self._lock_fd: int | None = None
        self._stopping = False
        self._closed = False
        self.failing = False  # the last write attempt failed
        self.dropped = 0

    # ----------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await asyncio.to_thread(self._open)
        self._set_health(True)
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Flush everything queued, write a final checkpoint, close. Later submits write inline."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        async with self._io:
            # From here on nothing awaits: records that arrived while the task wound down, and
            # any that arrive later (inline in submit), are written on this thread, in order.
            self._closed = True
            leftover = list(self._queue)
            self._queue.clear()
            if leftover:
                try:
                    self._write_batch(leftover)
                except OSError:
                    log.exception("audit sink unwritable at shutdown: %d records lost", len(leftover))
                    self._fail_count()
            self._final()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until everything queued so far is written (tests, the demo)."""
        deadline = time.monotonic() + timeout
        while self._queue and self._task is not None and not self._task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        async with self._io:
            pass

    async def checkpoint_now(self) -> None:
        """Write a signed checkpoint for the records written so far."""
        await self.flush()
        async with self._io:
            await asyncio.to_thread(self._checkpoint)

    # ----------------------------------------------------------- request path

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def overloaded(self) -> bool:
        """True while new requests should be refused under fail-closed."""
        return self.failing or len(self._queue) >= self.opt.queue_size

    def submit(self, body: dict[str, Any], finish: Callable[[dict[str, Any]], Any] | None = None) -> bool:
        """Queue one record; never blocks. False (counted, logged) only beyond the hard limit.

        `finish(body)` runs later in the writer thread (digests, content to retain)."""
        if self._closed:  # shutdown already flushed: a late exchange is written inline
            try:
                self._write_batch([_Pending(body, finish)])
                self._final()
                return True
            except OSError:
                log.exception("audit record %s lost at shutdown: sink unwritable", body.get("request_id"))
                self._fail_count()
                return False
        if len(self._queue) >= self.opt.hard_limit:
            self.dropped += 1
            self._fail_count()
            log.error("audit queue full (%d): record of request %s dropped", len(self._queue), body.get("request_id"))
            return False
        self._queue.append(_Pending(body, finish))
        if self.metrics is not None:
            self.metrics.audit_queue.set(len(self._queue))
        self._wake.set()
        return True

    # ----------------------------------------------------------- writer task

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._until_checkpoint())
                except TimeoutError:
                    pass
                if not self._stopping and len(self._queue) < MAX_BATCH // 8:
                    await asyncio.sleep(LINGER_S)  # gather a batch: one thread hop per batch, not per record
            if self._queue:
                batch = [self._queue[i] for i in range(min(MAX_BATCH, len(self._queue)))]
                try:
                    async with self._io:
                        await asyncio.to_thread(self._write_batch, batch)
                except Exception as e:  # the disk, or a bug: either way unhealthy, retried, never silent
                    self._on_error("write", e)
                    if self._stopping and backoff >= 1.0:
                        log.error("audit sink still unwritable at shutdown: %d records kept in memory only", len(self._queue))
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                    continue
                backoff = 0.05
                for _ in batch:
                    self._queue.popleft()
                if self.metrics is not None:
                    self.metrics.audit_records.inc(len(batch))
                    self.metrics.audit_queue.set(len(self._queue))
                if self.failing:
                    self._set_health(True)
            if self._checkpoint_due():
                try:
                    async with self._io:
                        await asyncio.to_thread(self._checkpoint)
                except Exception as e:
                    self._on_error("checkpoint", e)

    def _until_checkpoint(self) -> float | None:
        if not self._state.period:
            return None
        return max(0.0, self.opt.checkpoint_interval_s - (time.monotonic() - self._state.last_checkpoint_at))

    def _checkpoint_due(self) -> bool:
        s = self._state
        if not s.period:
            return False
        return (len(s.period) >= self.opt.checkpoint_every
                or time.monotonic() - s.last_checkpoint_at >= self.opt.checkpoint_interval_s)

    def _on_error(self, what: str, e: Exception) -> None:
        log.error("audit sink %s failed: %r", what, e)
        self._fail_count()
        self._set_health(False)

    def _fail_count(self) -> None:
        if self.metrics is not None:
            self.metrics.audit_failures.inc()

    def _set_health(self, ok: bool) -> None:
        self.failing = not ok
        if self.metrics is not None:
            self.metrics.audit_sink_healthy.set(1 if ok else 0)

    # ----------------------------------------------------------- thread side

    def _open(self) -> None:
        root = self.dir / layout.RECORDS
        root.mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        self._lock_chain(root)
        self._recover(root / self.chain_id)

    def _lock_chain(self, root: Path) -> None:
        """One writer per chain: a second process on the same host gets its own chain id."""
        for candidate in (self.chain_id, f"{self.chain_id}-{os.getpid()}"):
            d = root / candidate
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN) and self.requested_chain is None:
                    continue
                raise
            self.chain_id, self._lock_fd = candidate, fd
            return
        raise RuntimeError("could not lock an audit chain directory")

    def _recover(self, chain_dir: Path) -> None:
        s = self._state
        ckpts = self.checkpoints_dir / f"{self.chain_id}.jsonl"
        ckpt_seq = -1
        if ckpts.exists():
            self._cut_torn_tail(ckpts)  # a crash while appending a checkpoint: it never counted
            last = None
            for _, line, complete in layout.iter_lines(ckpts):
                if complete and line.strip():
                    last = line
            if last is not None:
                doc = orjson.loads(last)
                ckpt_seq, s.last_checkpoint = doc["seq"], doc["hash"]
        files = layout.record_files(chain_dir)
        if not files:
            return
        self._cut_torn_tail(files[-1])
        leaves: list[tuple[int, bytes]] = []
        found_head = False
        for path in reversed(files):  # newest first, streaming: files may be large
            first_seq, last, file_leaves = None, None, []
            for lineno, line, _ in layout.iter_lines(path):
                if not line.strip():
                    continue
                try:
                    last = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise SinkCorrupt(f"{path}:{lineno} is not JSON: run `ramparts audit verify`; "
                                      "the writer will not extend a damaged chain") from None
                if first_seq is None:
                    first_seq = last["seq"]
                if last["seq"] > ckpt_seq:
                    file_leaves.append((last["seq"], merkle.leaf(last["hash"])))
            if last is not None and not found_head:
                s.seq, s.head, found_head = last["seq"] + 1, last["hash"], True
            leaves[:0] = file_leaves
            if first_seq is not None and first_seq <= ckpt_seq + 1:
                break
        s.period = [h for _, h in leaves]
        s.period_first = leaves[0][0] if leaves else s.seq
        self._open_file(files[-1], files[-1].stem)

    def _cut_torn_tail(self, path: Path) -> None:
        data = path.read_bytes()
        good = data.rfind(b"\n") + 1
        if good == len(data):
            return
        torn = path.with_name(f"{path.name}.torn-{int(time.time())}")
        torn.write_bytes(data[good:])
        with open(path, "r+b") as f:
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
        log.warning("audit: torn last line of %s moved to %s; the chain resumes", path, torn.name)
        last = data[:good].rstrip(b"\n").rpartition(b"\n")[2]
        if last:
            try:
                orjson.loads(last)
            except orjson.JSONDecodeError:
                raise SinkCorrupt(f"{path}: the last complete line is not JSON") from None

    def _open_file(self, path: Path, day: str) -> None:
        s = self._state
        if s.fd is not None:
            os.close(s.fd)
        s.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        s.file, s.day = path, day

    def _rotate_if_needed(self) -> None:
        s = self._state
        day = self._day()
        if s.day == day:
            if s.fd is None:  # closed at shutdown, a late record: same file, no new header
                self._open_file(s.file, day)
            return
        if s.period:  # a checkpoint closes each file's period: a period never spans files
            self._checkpoint()
        chain_dir = self.dir / layout.RECORDS / self.chain_id
        previous = s.file.name if s.file is not None else None
        path = chain_dir / f"{day}.jsonl"
        self._open_file(path, day)
        header = {"v": 1, "type": "file", "time": utc_now(), "file": path.name, "previous_file": previous}
        self._append(seal(self.chain_id, s.seq, s.head, [header], self.signer, {}))  # the writer key signs

    def _write_batch(self, batch: list[_Pending]) -> None:
        self._rotate_if_needed()
        s = self._state
        self._append(self.sealer.seal_batch(self.chain_id, s.seq, s.head, [(p.body, p.finish) for p in batch]))

    def _append(self, sealed: Sealed) -> None:
        """Write sealed entries as one unit: the chain state moves only when every byte is written."""
        s = self._state
        data = b"".join(line for _, line in sealed)
        offset = os.fstat(s.fd).st_size
        try:
            view = memoryview(data)
            while view:
                n = os.write(s.fd, view)
                view = view[n:]
        except OSError:
            try:
                os.ftruncate(s.fd, offset)
            except OSError:
                log.exception("audit: could not truncate %s after a failed write", s.file)
            raise
        for h, _ in sealed:
            if not s.period:
                s.period_first = s.seq
            s.period.append(merkle.leaf(h))
            s.seq, s.head = s.seq + 1, h
        s.dirty = True
        self._maybe_fsync()

    def _maybe_fsync(self, force: bool = False) -> None:
        s = self._state
        if not s.dirty or s.fd is None:
            return
        now = time.monotonic()
        if force or self.opt.fsync == "batch" or (self.opt.fsync == "interval" and now - s.last_fsync >= self.opt.fsync_interval_s):
            os.fsync(s.fd)
            s.dirty, s.last_fsync = False, now

    def _checkpoint(self) -> None:
        """Signed (chain, seq, head, Merkle root of the period, time); records are fsynced first."""
        s = self._state
        if not s.period:
            return
        self._maybe_fsync(force=True)
        doc = {"v": 1, "type": "checkpoint", "time": utc_now(), "chain": self.chain_id,
               "first_seq": s.period_first, "seq": s.seq - 1, "count": len(s.period), "head": s.head,
               "merkle_root": merkle.root(s.period).hex(), "file": s.file.name if s.file else None,
               "prev": s.last_checkpoint, "kid": self.signer.kid}
        doc["hash"] = entry_hash(doc)
        doc["sig"] = self.signer.sign(doc["hash"])
        path = self.checkpoints_dir / f"{self.chain_id}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, orjson.dumps(doc) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        s.period, s.period_first = [], s.seq
        s.last_checkpoint, s.last_checkpoint_at = doc["hash"], time.monotonic()

    def _final(self) -> None:
        s = self._state
        try:
            self._checkpoint()
            self._maybe_fsync(force=True)
        except OSError as e:
            self._on_error("final checkpoint", e)
        if s.fd is not None:
            os.close(s.fd)
            s.fd = None
        if self._closed:
            self.sealer.close()  # late records seal inline from here on
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
