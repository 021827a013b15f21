"""Two Tidings nodes on one PostgreSQL database and one blob directory behave as one server.

Runs only with TIDINGS_TEST_DATABASE set (scripts/test.sh does a PostgreSQL pass).  Each node gets
its own node_id: change events are tagged with it so a node drops its own echoes, and two nodes in
one test process would otherwise share the default (host name + pid) and drop each other's events.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from imapclient import IMAPClient

from tests.interop.conftest import ALICE, PASSWORD, MailServer, client_tls, message
from tests.support.running import fresh_database_url

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not os.environ.get("TIDINGS_TEST_DATABASE"), reason="needs TIDINGS_TEST_DATABASE"),
]


def imaps(node: MailServer) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=node.ports["imaps"], ssl=True, ssl_context=client_tls(), timeout=10)
    client.login(ALICE, PASSWORD)
    return client


@pytest.fixture
def nodes(make_server, tmp_path) -> tuple[MailServer, MailServer]:
    url = fresh_database_url()
    shared = {"database": url, "blob_dir": tmp_path / "shared-blobs"}
    first = make_server("n1", node_id="node-1", **shared)
    second = make_server("n2", node_id="node-2", **shared)
    return MailServer(first), MailServer(second, create_user=False)


def test_idle_on_one_node_sees_smtp_delivery_to_the_other_within_a_second(nodes):
    first, second = nodes
    client = imaps(second)
    client.select_folder("INBOX")
    client.idle()
    try:
        first.send_smtp(message("across nodes"))
        delivered = time.monotonic()
        responses = client.idle_check(timeout=5)
        latency = time.monotonic() - delivered
    finally:
        client.idle_done()
    assert (1, b"EXISTS") in responses
    assert latency < 1.0
    # the body was written to the shared blob directory by node 1 and is read by node 2
    [uid] = client.search("ALL")
    assert b"Subject: across nodes" in client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    client.logout()


def test_concurrent_appends_on_both_nodes_get_unique_increasing_uids(nodes):
    per_node = 15
    uids: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    observed: list[tuple[int, int]] = []
    done = threading.Event()

    def append_many(node: MailServer, label: str) -> None:
        try:
            client = imaps(node)
            got = []
            for n in range(per_node):
                reply = client.append("INBOX", message(f"{label} {n}"))
                # "[APPENDUID <uidvalidity> <uid>] ..."
                got.append(int(reply.split(b"APPENDUID ")[1].split(b"]")[0].split()[1]))
            uids[label] = got
            client.logout()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def watch_status() -> None:
        # STATUS alternately on each node while both append: neither counter may go backwards.
        try:
            clients = [imaps(node) for node in nodes]
            while not done.is_set():
                for client in clients:
                    status = client.folder_status("INBOX", ["UIDNEXT", "HIGHESTMODSEQ"])
                    observed.append((status[b"UIDNEXT"], status[b"HIGHESTMODSEQ"]))
            for client in clients:
                client.logout()
        except BaseException as exc:
            errors.append(exc)

    appenders = [
        threading.Thread(target=append_many, args=(node, f"node{i}")) for i, node in enumerate(nodes)
    ]
    watcher = threading.Thread(target=watch_status)
    watcher.start()
    for thread in appenders:
        thread.start()
    for thread in appenders:
        thread.join(60)
    done.set()
    watcher.join(30)
    assert errors == []

    all_uids = uids["node0"] + uids["node1"]
    assert sorted(all_uids) == list(range(1, 2 * per_node + 1))  # unique, no gaps
    for got in uids.values():
        assert got == sorted(got)  # each client's appends get increasing UIDs
    assert len(observed) > 2
    assert [pair[0] for pair in observed] == sorted(pair[0] for pair in observed)
    assert [pair[1] for pair in observed] == sorted(pair[1] for pair in observed)
    first, second = nodes
    assert first.status().uidnext == second.status().uidnext == 2 * per_node + 1
