import socket

from bench.ports import _ephemeral_low, free_port


def test_free_port_is_bindable_and_below_the_ephemeral_range():
    low = _ephemeral_low()
    for _ in range(20):
        port = free_port()
        assert 1024 <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_free_port_skips_a_port_that_is_taken(monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", free_port()))
    busy = taken.getsockname()[1]
    picks = iter([busy, busy, busy + 1 if busy + 1 < _ephemeral_low() else busy - 1])
    monkeypatch.setattr("bench.ports.random.SystemRandom.randint", lambda self, a, b: next(picks))
    try:
        assert free_port() != busy
    finally:
        taken.close()
