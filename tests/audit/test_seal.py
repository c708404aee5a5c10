from __future__ import annotations

from proxy.audit import verify
from proxy.audit.canonical import GENESIS, entry_hash
from proxy.audit.seal import InlineSealer, ProcessSealer, prepare, seal
from proxy.audit.writer import AuditWriter, WriterOptions
from tests.audit.conftest import exchange_body


def test_seal_links_and_signs(signer, keyring):
    sealed = seal("c1", 0, GENESIS, [exchange_body(0), exchange_body(1)], signer, {})
    import orjson
    a, b = (orjson.loads(line) for _, line in sealed)
    assert (a["seq"], a["prev"], b["seq"], b["prev"]) == (0, GENESIS, 1, a["hash"])
    assert entry_hash(b) == b["hash"] == sealed[1][0] and keyring.verify(b["kid"], b["hash"], b["sig"])


def test_prepare_flags_poison_records():
    def boom(body):
        raise KeyError("x")
    bodies = prepare([(exchange_body(0), boom), (exchange_body(1), None)], None)
    assert bodies[0]["audit_error"] == "KeyError" and "audit_error" not in bodies[1]


def test_inline_and_process_sealers_agree(signer):
    items = [(exchange_body(i), None) for i in range(5)]
    inline = InlineSealer(signer, {}, None).seal_batch("c1", 7, "ab" * 32, items)
    proc = ProcessSealer(signer, {}, None, None, None)
    try:
        remote = proc.seal_batch("c1", 7, "ab" * 32, items)
        assert proc.inline_batches == 0
        # Ed25519 is deterministic: same key, same entry -> same signature, same bytes
        assert remote == inline
        closure = proc.seal_batch("c1", 7, "ab" * 32, [(exchange_body(0), lambda body: None)])
        assert proc.inline_batches == 1 and closure[0][0] == inline[0][0]  # a lambda cannot cross: sealed inline
    finally:
        proc.close()
    assert proc.seal_batch("c1", 7, "ab" * 32, items) == inline  # after close: inline


async def test_writer_with_a_process_sealer(tmp_path, signer, keyring):
    w = AuditWriter(tmp_path, "c1", signer, {}, WriterOptions(), sealer=ProcessSealer(signer, {}, None, None, None))
    await w.start()
    for i in range(50):
        w.submit(exchange_body(i))
    await w.stop()
    assert w.submit(exchange_body(50))  # late, after stop: sealed inline
    rep = verify.verify_dir(tmp_path, keyring)
    assert rep.status == verify.OK and rep.chains[0].entries == 52


def test_a_dead_sealer_process_falls_back_inline(signer):
    import os
    import signal
    items = [(exchange_body(i), None) for i in range(3)]
    inline = InlineSealer(signer, {}, None).seal_batch("c1", 0, GENESIS, items)
    proc = ProcessSealer(signer, {}, None, None, None)
    try:
        assert proc.seal_batch("c1", 0, GENESIS, items) == inline
        for pid in list(proc._pool._processes):
            os.kill(pid, signal.SIGKILL)
        assert proc.seal_batch("c1", 0, GENESIS, items) == inline  # no record lost
        assert proc.inline_batches == 1 and proc._pool is None
    finally:
        proc.close()
