"""Hostile clients (issue 6): each attack is bounded by a limit from the config, and
the daemon keeps answering /healthz quickly while it goes on.

Attacks: thousands of idle connections, slow headers and slow bodies that keep
trickling (slowloris), oversized heads, pipelined garbage. A `Prober` thread measures /healthz on fresh
connections during each attack; the tests assert on its worst answer time.
"""

from __future__ import annotations

import re
import resource
import socket
import threading
import time

import pytest

from conftest import WEBHOOK_PATH, created, uid

IO_TIMEOUT_S = 2
REQUEST_TIMEOUT_S = 4
MAX_HEADER_BYTES = 4096
HEALTHZ_BUDGET_S = 2.0


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors():
    """Raise this process's open-file limit (the daemon inherits it) for the idle flood."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def target(daemon_factory):
    return daemon_factory(
        "hostile",
        extra={
            "server": {
                "io_timeout_s": IO_TIMEOUT_S,
                "request_timeout_s": REQUEST_TIMEOUT_S,
                "max_header_bytes": MAX_HEADER_BYTES,
            }
        },
    )


class Prober(threading.Thread):
    """GET /healthz on a new connection every 50 ms; records each answer's time."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.times: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
                if not data.startswith(b"HTTP/1.1 200"):
                    self.failures.append(data[:80].decode(errors="replace"))
            except OSError as error:
                self.failures.append(repr(error))
            self.times.append(time.monotonic() - start)
            self.stop.wait(0.05)

    def __enter__(self) -> "Prober":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(10)

    def assert_responsive(self) -> None:
        assert self.times, "no /healthz probe ran"
        assert not self.failures, f"/healthz failed during the attack: {self.failures[:3]}"
        assert max(self.times) < HEALTHZ_BUDGET_S, f"slowest /healthz {max(self.times):.3f}s"


def closed_within(sockets: list[socket.socket], limit_s: float) -> int:
    """How many of `sockets` the server closed within `limit_s` (reading what it sends)."""
    deadline = time.monotonic() + limit_s
    open_ = list(sockets)
    closed = 0
    while open_ and time.monotonic() < deadline:
        still = []
        for s in open_:
            s.setblocking(False)
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        closed += 1
                        break
            except BlockingIOError:
                still.append(s)
            except (ConnectionResetError, BrokenPipeError):
                closed += 1
        open_ = still
        time.sleep(0.05)
    return closed


def test_thousands_of_idle_connections(target):
    count = 2000
    idle: list[socket.socket] = []
    try:
        with Prober(target.port) as prober:
            for _ in range(count):
                idle.append(socket.create_connection(("127.0.0.1", target.port), timeout=5))
            time.sleep(0.5)
            # Webhooks still go through while the idle sockets sit there.
            target.accept(created(uid("ses"), uid("ath")))
            # The I/O timeout closes every one of them.
            assert closed_within(idle, IO_TIMEOUT_S * 3 + 2) == count
        prober.assert_responsive()
    finally:
        for s in idle:
            s.close()


def slow_senders(port: int, count: int, head: bytes, trickle: bytes) -> tuple[list[socket.socket], threading.Event]:
    """`count` connections that send `head`, then one byte of `trickle` every 200 ms."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    for s in sockets:
        s.sendall(head)
    stop = threading.Event()

    def drip() -> None:
        i = 0
        while not stop.is_set() and i < len(trickle):
            for s in sockets:
                try:
                    s.send(trickle[i : i + 1])
                except OSError:
                    pass
            i += 1
            stop.wait(0.2)

    threading.Thread(target=drip, daemon=True).start()
    return sockets, stop


@pytest.mark.parametrize(
    "kind,head,trickle",
    [
        ("slow headers", b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 200),
        (
            "slow body",
            b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\n\r\n",
            b'{"type":' + b" " * 400,
        ),
    ],
)
def test_slowloris_is_cut_off_by_the_request_timeout(target, kind, head, trickle):
    # A byte every 200 ms (for 40 s if allowed) never lets io_timeout_s expire, since
    # libevent restarts it at every byte: only server.request_timeout_s bounds these.
    count = 200
    limit = REQUEST_TIMEOUT_S + 4
    with Prober(target.port) as prober:
        started = time.monotonic()
        sockets, stop = slow_senders(target.port, count, head, trickle)
        try:
            closed = closed_within(sockets, limit)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            for s in sockets:
                s.close()
    assert closed == count, f"{kind}: {count - closed} connections still open after {limit} s"
    assert elapsed >= REQUEST_TIMEOUT_S - 0.5, f"{kind}: all cut after {elapsed:.1f}s, before the request timeout"
    prober.assert_responsive()
    assert "no complete request within request_timeout_s" in target.log_path.read_text()


def test_oversized_heads_are_refused_and_closed(target):
    count = 100
    with Prober(target.port) as prober:
        sockets = [socket.create_connection(("127.0.0.1", target.port), timeout=5) for _ in range(count)]
        for s in sockets:
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES * 4) + b"\r\n\r\n")
            except OSError:
                pass  # the server may close before everything is written
        answers = []
        for s in sockets:
            s.settimeout(5)
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            answers.append(data)
            s.close()
    # Refused with a 4xx, or cut without an answer; never served.
    assert not [a for a in answers if a.startswith(b"HTTP/1.1 200")]
    assert all(a == b"" or a.startswith(b"HTTP/1.1 4") for a in answers), answers[:3]
    prober.assert_responsive()


def test_pipelined_requests_are_answered_in_order(target):
    with socket.create_connection(("127.0.0.1", target.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 50 + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 ") < 51 and time.monotonic() < deadline:
            data += s.recv(65536)
    # Bodies have no trailing newline: a status line may follow one on the same "line".
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200"] * 50 + [b"404"]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff\xfe" * 300,
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n",
        b"\r\n" * 2000,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 500,
    ],
    ids=["binary", "bad-version", "negative-length", "bad-chunk", "blank-lines", "tls-after-request"],
)
def test_pipelined_garbage_ends_the_connection(target, garbage):
    limit = IO_TIMEOUT_S * 3 + 2
    with Prober(target.port) as prober:
        # 20 connections at once: the server must end each within the I/O timeout.
        sockets = [socket.create_connection(("127.0.0.1", target.port), timeout=5) for _ in range(20)]
        for s in sockets:
            try:
                s.sendall(garbage)
            except OSError:
                pass
        deadline = time.monotonic() + limit
        for s in sockets:
            data = b""
            try:
                while True:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            except socket.timeout:
                pytest.fail(f"connection still open {limit}s after garbage {garbage[:20]!r}")
            finally:
                s.close()
            # A valid request in front is answered; the garbage never gets a 2xx.
            answers = re.findall(rb"HTTP/1\.[01] (\d{3}) ", data)
            assert all(not a.startswith(b"2") for a in answers[1:]), answers
    prober.assert_responsive()
    target.accept(created(uid("ses"), uid("ath")))
