"""bench.core's child processes: a port taken between the pick and the child's bind is survived."""

import os
import socket
import urllib.request

import bench.core as core
import bench.ports as ports


def test_a_child_whose_port_was_taken_is_restarted_on_a_fresh_one(tmp_path, monkeypatch):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", ports.free_port()))
    taken = squatter.getsockname()[1]
    real = ports.free_port
    picks = iter([taken])
    monkeypatch.setattr(core, "free_port", lambda: next(picks, None) or real())
    env = {**os.environ, "PYTHONPATH": str(core.ROOT)}
    mock = passthrough = None
    try:
        mock = core.spawn_mock(None, tmp_path, env)
        assert mock.port != taken
        picks = iter([taken])
        passthrough = core.spawn_passthrough(mock.port, None, tmp_path, env)
        assert passthrough.port == taken
        core.wait_listening(passthrough)
        assert passthrough.port != taken and passthrough.popen.poll() is None
        body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
        req = urllib.request.Request(f"http://127.0.0.1:{passthrough.port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer sk-x"})
        with urllib.request.urlopen(req, timeout=10) as r:  # through the restarted floor to the mock
            assert r.status == 200 and b"choices" in r.read()
    finally:
        squatter.close()
        for p in (mock, passthrough):
            if p is not None:
                p.stop()


def test_a_child_that_fails_for_another_reason_is_not_restarted(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(core.ROOT)}
    proc = core.spawn("broken", ["-c", "import sys; sys.exit(3)"], None, ports.free_port(), tmp_path, env)
    proc.respawn = lambda: (_ for _ in ()).throw(AssertionError("restarted"))
    try:
        core.wait_listening(proc, timeout=10)
    except SystemExit as e:
        assert "broken exited" in str(e)
    else:
        raise AssertionError("wait_listening returned for a dead child")
