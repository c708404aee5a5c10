"""The background sink: never blocks, never drops silently, survives crashes and restarts."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest

from proxy.audit import verify
from proxy.audit.writer import AuditWriter, WriterOptions
from proxy.metrics import Metrics
from tests.audit.conftest import chain_file, exchange_body, read_lines, write_log


async def test_records_are_chained_in_submit_order(tmp_path, signer):
    await write_log(tmp_path, signer, 50, batch=7)
    entries = [orjson.loads(line) for line in read_lines(chain_file(tmp_path))]
    assert [e["seq"] for e in entries] == list(range(51))
    assert [e["request_id"] for e in entries[1:]] == [f"req-{i}" for i in range(50)]
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:]))


async def test_submit_never_touches_disk(tmp_path, signer):
    """The request path appends to memory only; the writer task does all disk work."""
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions())
    for i in range(2000):
        assert w.submit(exchange_body(i)) is True
    assert w.depth == 2000 and not (tmp_path / "records").exists()
    await w.start()
    await w.stop()
    assert len(read_lines(chain_file(tmp_path))) == 2001


async def test_checkpoint_by_count_and_time(tmp_path, signer, keyring):
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(checkpoint_every=5, checkpoint_interval_s=0.05))
    await w.start()
    for i in range(5):
        w.submit(exchange_body(i))
    await w.flush()
    await asyncio.sleep(0.01)
    cps = read_lines(tmp_path / "checkpoints" / "c1.jsonl")
    assert len(cps) == 1 and orjson.loads(cps[0])["count"] == 6  # header + 5
    w.submit(exchange_body(99))
    await asyncio.sleep(0.2)  # idle: the timer writes the next one
    cps = read_lines(tmp_path / "checkpoints" / "c1.jsonl")
    assert len(cps) == 2 and orjson.loads(cps[1])["first_seq"] == 6
    await w.stop()
    assert verify.verify_dir(tmp_path, keyring).status == verify.OK


async def test_sink_write_failure_keeps_records_and_reports_unhealthy(tmp_path, signer, keyring):
    """A failed append is truncated back and retried: no gap, no duplicate, alarm metrics set."""
    metrics = Metrics()
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(), metrics)
    await w.start()
    w.submit(exchange_body(0))
    await w.flush()
    real_write = os.write
    fail = {"on": True}

    def flaky(fd, data):
        if fail["on"]:
            real_write(fd, bytes(data[:10]))  # a partial write, then the disk says no
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    os.write = flaky
    try:
        for i in range(1, 4):
            w.submit(exchange_body(i))
        for _ in range(200):
            if w.failing:
                break
            await asyncio.sleep(0.005)
        assert w.failing and w.overloaded and w.depth == 3
        assert metrics.audit_sink_healthy._value.get() == 0
        assert metrics.audit_failures._value.get() >= 1
        fail["on"] = False
    finally:
        os.write = real_write
    await w.flush()
    assert not w.failing and metrics.audit_sink_healthy._value.get() == 1
    await w.stop()
    rep = verify.verify_dir(tmp_path, keyring)
    assert rep.status == verify.OK and rep.chains[0].entries == 5


async def test_read_only_directory_is_an_alarm_not_a_crash(tmp_path, signer):
    metrics = Metrics()
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(), metrics)
    await w.start()
    w.submit(exchange_body(0))
    await w.flush()
    os.close(w._state.fd)  # the sink's file goes away underneath (read-only remount, revoked volume)
    w._state.fd = os.open(os.devnull, os.O_RDONLY)
    w.submit(exchange_body(1))
    for _ in range(200):
        if w.failing:
            break
        await asyncio.sleep(0.005)
    assert w.failing and w.depth == 1
    assert metrics.audit_failures._value.get() >= 1


async def test_hard_limit_drop_is_counted_and_logged(tmp_path, signer, caplog):
    metrics = Metrics()
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(queue_size=2, hard_limit=3), metrics)
    # not started: nothing drains the queue
    assert [w.submit(exchange_body(i)) for i in range(4)] == [True, True, True, False]
    assert w.overloaded and w.dropped == 1
    assert metrics.audit_failures._value.get() == 1
    assert "req-3" in caplog.text


async def test_late_record_after_stop_is_written_inline(tmp_path, signer, keyring):
    """SIGTERM: stop() flushed; an exchange that completes after that is still written."""
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions())
    await w.start()
    w.submit(exchange_body(0))
    await w.stop()
    assert w.submit(exchange_body(1)) is True
    rep = verify.verify_dir(tmp_path, keyring)
    assert rep.status == verify.OK and rep.chains[0].entries == 3


async def test_restart_resumes_the_chain_and_the_merkle_period(tmp_path, signer, keyring):
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(checkpoint_every=1000))
    await w.start()
    for i in range(4):
        w.submit(exchange_body(i))
    await w.flush()
    # crash: no stop(), no final checkpoint; the lock dies with the process
    os.close(w._lock_fd)
    w._task.cancel()
    w2 = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(checkpoint_every=1000))
    await w2.start()
    w2.submit(exchange_body(10))
    await w2.stop()
    rep = verify.verify_dir(tmp_path, keyring)
    assert rep.status == verify.OK
    assert rep.chains[0].checkpoints_matched == 1 and rep.chains[0].entries == 6


async def test_second_writer_on_the_same_host_gets_its_own_chain(tmp_path, signer, keyring):
    a = AuditWriter(tmp_path, None, signer, {}, WriterOptions())
    b = AuditWriter(tmp_path, None, signer, {}, WriterOptions())
    await a.start()
    await b.start()
    assert a.chain_id != b.chain_id and b.chain_id.endswith(f"-{os.getpid()}")
    a.submit(exchange_body(0))
    b.submit(exchange_body(1))
    await a.stop()
    await b.stop()
    rep = verify.verify_dir(tmp_path, keyring)
    assert rep.status == verify.OK and len(rep.chains) == 2


async def test_configured_chain_id_is_exclusive(tmp_path, signer):
    a = AuditWriter(tmp_path, "pod-1", signer, {}, WriterOptions())
    await a.start()
    b = AuditWriter(tmp_path, "pod-1", signer, {}, WriterOptions())
    with pytest.raises(OSError):
        await b.start()
    await a.stop()


_CHILD = """
import asyncio, sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from proxy.audit.keyring import Signer
from proxy.audit.writer import AuditWriter, WriterOptions
from tests.audit.conftest import exchange_body

async def main():
    key = serialization.load_pem_private_key(Path(sys.argv[2]).read_bytes(), None)
    w = AuditWriter(Path(sys.argv[1]), "c1", Signer.from_private(key), {}, WriterOptions(checkpoint_every=50, fsync="off"))
    await w.start()
    i = 0
    while True:
        for _ in range(20):
            w.submit(exchange_body(i)); i += 1
        if i == 200:
            await w.flush()
            print("ready", flush=True)
        await asyncio.sleep(0.001)

asyncio.run(main())
"""


async def test_kill_9_mid_write_then_restart(tmp_path, signer, keyring):
    """L5 with a real process: SIGKILL while writing; the log is OK or TORN_TAIL, never TAMPER; the chain resumes."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    key = tmp_path / "k.pem"
    key.write_bytes(signer.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    log = tmp_path / "log"
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(log), str(key)], cwd=root, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"ready"
        await asyncio.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    first = verify.verify_dir(log, keyring)
    assert first.status in (verify.OK, verify.TORN_TAIL) and first.chains[0].entries >= 201
    before = first.chains[0].entries
    await write_log(log, signer, 5)
    rep = verify.verify_dir(log, keyring)
    assert rep.status == verify.OK and rep.chains[0].entries == before + 5
    assert rep.chains[0].checkpoints_matched == rep.chains[0].checkpoints >= 2


async def test_torn_checkpoint_line_is_cut_at_restart(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 4)
    cp = tmp_path / "checkpoints" / "c1.jsonl"
    cp.write_bytes(cp.read_bytes() + b'{"v":1,"type":"checkpo')  # kill -9 during a checkpoint append
    assert verify.verify_dir(tmp_path, keyring).status == verify.OK  # an unfinished checkpoint never counted
    await write_log(tmp_path, signer, 4)
    rep = verify.verify_dir(tmp_path, keyring)
    assert rep.status == verify.OK and rep.chains[0].checkpoints_matched == 2


_FSIZE_CHILD = """
import asyncio, resource, signal, sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from proxy.audit.keyring import Signer
from proxy.audit.writer import AuditWriter, WriterOptions
from proxy.metrics import Metrics
from tests.audit.conftest import exchange_body

async def main():
    key = serialization.load_pem_private_key(Path(sys.argv[2]).read_bytes(), None)
    chain = sys.argv[3] if sys.argv[3] != "-" else None
    limit = int(sys.argv[4])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    m = Metrics()
    w = AuditWriter(Path(sys.argv[1]), chain, Signer.from_private(key), {}, WriterOptions(queue_size=1000), m)
    await w.start()
    if sys.argv[5] == "hold":  # report the chain, then wait for the parent: both writers run at once
        print(w.chain_id, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for i in range(300):
        w.submit(exchange_body(i))
        if i % 25 == 0:
            await asyncio.sleep(0.01)
    for _ in range(100):
        if w.failing or not w.depth:
            break
        await asyncio.sleep(0.02)
    print(w.chain_id, int(w.failing), int(w.overloaded), int(m.audit_failures._value.get()), w.depth, flush=True)
    if not limit:
        await w.stop()

asyncio.run(main())
"""


def _child(tmp_path, signer, log, chain="-", fsize=0, hold=False):
    import subprocess
    import sys
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    key = tmp_path / "k.pem"
    if not key.exists():
        key.write_bytes(signer.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen([sys.executable, "-c", _FSIZE_CHILD, str(log), str(key), chain, str(fsize),
                             "hold" if hold else "run"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


async def test_two_writer_processes_on_one_host_keep_separate_chains(tmp_path, signer, keyring):
    """L6: two real processes, same directory, default chain id: two chains, both verify."""
    log = tmp_path / "log"
    procs = [_child(tmp_path, signer, log, hold=True) for _ in range(2)]
    chains = [p.stdout.readline().strip() for p in procs]  # both started, both hold their chain's lock
    assert chains[0] != chains[1]
    outs = [p.communicate("go\n", timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs) and [o[0] for o in outs] == chains
    rep = verify.verify_dir(log, keyring)
    assert rep.status == verify.OK and sorted(c.entries for c in rep.chains) == [301, 301]


async def test_file_size_limit_is_an_alarm_and_leaves_a_valid_log(tmp_path, signer, keyring):
    """L8 with a real `ulimit -f`: EFBIG -> unhealthy, failures counted, queue kept; the file stays verifiable."""
    log = tmp_path / "log"
    p = _child(tmp_path, signer, log, chain="c1", fsize=40_000)
    chain, failing, overloaded, failures, depth = p.communicate(timeout=60)[0].split()
    assert p.returncode == 0
    assert (failing, overloaded) == ("1", "1") and int(failures) >= 1 and int(depth) > 0
    written = chain_file(log).stat().st_size
    assert written <= 40_000
    rep = verify.verify_dir(log, keyring)
    assert rep.status == verify.OK and rep.chains[0].entries + int(depth) == 301  # nothing lost, nothing torn


async def test_writer_refuses_to_extend_a_damaged_chain(tmp_path, signer):
    from proxy.audit.writer import SinkCorrupt
    await write_log(tmp_path, signer, 3)
    path = chain_file(tmp_path)
    lines = read_lines(path)
    lines[2] = b"garbage\n"
    path.write_bytes(b"".join(lines))
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions())
    with pytest.raises(SinkCorrupt, match="not JSON"):
        await w.start()


async def test_a_poison_record_is_written_with_a_flag_and_does_not_stall(tmp_path, signer, keyring):
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions())
    await w.start()

    def boom(body):
        raise ValueError("bad digest input")

    w.submit(exchange_body(0), boom)
    w.submit(exchange_body(1))
    await w.stop()
    entries = [orjson.loads(line) for line in read_lines(chain_file(tmp_path))]
    assert [e.get("audit_error") for e in entries[1:]] == ["ValueError", None]
    assert verify.verify_dir(tmp_path, keyring).status == verify.OK


async def test_restart_on_a_new_day_links_the_files(tmp_path, signer, keyring):
    await write_log(tmp_path, signer, 3, clock_day=lambda: "2026-11-21")
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(), clock_day=lambda: "2026-11-22")
    await w.start()
    w.submit(exchange_body(9))
    await w.stop()
    files = sorted((tmp_path / "records" / "c1").glob("*.jsonl"))
    assert [f.name for f in files] == ["2026-11-21.jsonl", "2026-11-22.jsonl"]
    header = orjson.loads(read_lines(files[1])[0])
    assert (header["type"], header["previous_file"], header["seq"]) == ("file", "2026-11-21.jsonl", 4)
    rep = verify.verify_dir(tmp_path, keyring)
    assert rep.status == verify.OK and rep.chains[0].entries == 6


async def test_stop_writes_a_final_checkpoint_covering_the_last_record(tmp_path, signer, keyring):
    """Neither N records nor T seconds reached: the shutdown checkpoint alone anchors the tail."""
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(checkpoint_every=1000, checkpoint_interval_s=3600))
    await w.start()
    for i in range(7):
        w.submit(exchange_body(i))
    await w.flush()
    assert not (tmp_path / "checkpoints" / "c1.jsonl").exists()  # nothing due yet
    await w.stop()
    cps = [orjson.loads(line) for line in read_lines(tmp_path / "checkpoints" / "c1.jsonl")]
    last = orjson.loads(read_lines(chain_file(tmp_path))[-1])
    assert len(cps) == 1 and (cps[0]["first_seq"], cps[0]["seq"], cps[0]["count"]) == (0, 7, 8)
    assert cps[0]["head"] == last["hash"] and keyring.verify(cps[0]["kid"], cps[0]["hash"], cps[0]["sig"])


async def test_checkpoints_in_a_separate_directory(tmp_path, signer, keyring):
    """checkpoints_dir elsewhere (another volume, shipped off-host): written, recovered from and verified against there."""
    shipped = tmp_path / "shipped"
    w = AuditWriter(tmp_path / "log", "c1", signer, {}, WriterOptions(checkpoint_every=4), checkpoints_dir=shipped)
    await w.start()
    for i in range(4):
        w.submit(exchange_body(i))
    await w.flush()  # header + 4 records: one checkpoint
    w.submit(exchange_body(4))
    w.submit(exchange_body(5))
    await w.flush()
    assert len(read_lines(shipped / "c1.jsonl")) == 1
    os.close(w._lock_fd)  # crash: no stop(), the last 2 records are not covered by a checkpoint yet
    w._task.cancel()
    w2 = AuditWriter(tmp_path / "log", "c1", signer, {}, WriterOptions(checkpoint_every=4), checkpoints_dir=shipped)
    await w2.start()  # the Merkle period resumes from the shipped checkpoints
    w2.submit(exchange_body(6))
    await w2.stop()
    assert not (tmp_path / "log" / "checkpoints").exists()
    rep = verify.verify_dir(tmp_path / "log", keyring, shipped)
    assert rep.status == verify.OK and rep.chains[0].checkpoints_matched == rep.chains[0].checkpoints == 2
    second = orjson.loads(read_lines(shipped / "c1.jsonl")[1])
    assert (second["first_seq"], second["seq"]) == (5, 7)  # the 2 unanchored records + the one after the restart
    path = chain_file(tmp_path / "log")
    path.write_bytes(b"".join(read_lines(path)[:-1]))
    assert verify.verify_dir(tmp_path / "log", keyring, shipped).status == verify.TRUNCATED
