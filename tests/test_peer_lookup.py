"""Finding the socket on the other end of a loopback connection: the one netlink query
(sock_diag) answers what a scan of /proc/net/tcp answers, for that connection only."""

from __future__ import annotations

import os
import socket
import time

import pytest

from rapid.supervisor import peers


def _pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    client = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    return srv, client, conn


def test_the_netlink_answer_is_the_peers_socket_and_uid():
    srv, client, conn = _pair()
    with srv, client, conn:
        peer, local = conn.getpeername(), conn.getsockname()
        found = peers._diag_socket(peer, local)
        assert found == (os.fstat(client.fileno()).st_ino, os.geteuid())
        assert found == peers._scan_proc_net_tcp(peer, local)
        assert peers.peer_socket(peer, local) == found


def test_no_such_connection_is_none():
    srv, client, conn = _pair()
    with srv, client, conn:
        local = conn.getsockname()
        assert peers._diag_socket(("127.0.0.1", 1), local) is None
        assert peers.peer_socket(("127.0.0.1", 1), local) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a peer under another uid)")
def test_a_peer_under_another_uid_is_seen_with_its_uid():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    address = srv.getsockname()
    pid = os.fork()
    if pid == 0:  # the child: another user's process, as a runtime under its own uid
        try:
            os.setgid(990321)
            os.setuid(990321)
            c = socket.socket()
            c.connect(address)
            time.sleep(5)
        finally:
            os._exit(0)
    try:
        srv.settimeout(10)
        conn, _ = srv.accept()
        with conn:
            found = peers.peer_socket(conn.getpeername(), conn.getsockname())
            assert found is not None and found[1] == 990321
            assert found == peers._scan_proc_net_tcp(conn.getpeername(), conn.getsockname())
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        srv.close()
