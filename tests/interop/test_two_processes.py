"""Two `tidings serve` processes on one PostgreSQL database: one server as far as clients can tell.

The in-process scale-out tests (test_scaleout.py) share an interpreter; this one runs two real
processes, as a deployment does, so change events must cross through LISTEN/NOTIFY and UIDs/modseqs
are allocated by two writers at once. Runs only with TIDINGS_TEST_DATABASE set.
"""

from __future__ import annotations

import imaplib
import json
import os
import smtplib
import subprocess
import sys
import threading
import time

import pytest

from tests.support.running import fresh_database_url

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not os.environ.get("TIDINGS_TEST_DATABASE"), reason="needs TIDINGS_TEST_DATABASE"),
]

USER, PASSWORD = "alice@example.test", "correct horse 1"


def start_node(tmp_path, name: str, database: str) -> tuple[subprocess.Popen, dict[str, int], object]:
    data = tmp_path / name
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'data_dir = "{data}"\nhostname = "{name}.example.test"\ndatabase = "{database}"\n'
        f'blob_dir = "{tmp_path / "blobs"}"\ndefault_domain = "example.test"\nnode_id = "{name}"\n'
        "allow_root = true\n"
        '[auth]\nallow_plaintext = true\n[listen]\nsmtp = ["127.0.0.1:0"]\nimap = ["127.0.0.1:0"]\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    status = data / "status.json"
    deadline = time.time() + 30
    while not status.exists():
        assert proc.poll() is None and time.time() < deadline, f"{name} did not start"
        time.sleep(0.1)
    listeners = json.loads(status.read_text())["listeners"]
    return proc, {n: addrs[0][1] for n, addrs in listeners.items()}, config


@pytest.fixture
def two_nodes(tmp_path):
    database = fresh_database_url()
    first = start_node(tmp_path, "node1", database)
    second = start_node(tmp_path, "node2", database)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tidings.cli",
            "--config",
            str(first[2]),
            "user",
            "add",
            USER,
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    yield first[1], second[1]
    for proc, _, _ in (first, second):
        proc.terminate()
        proc.wait(20)


def login(port: int) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(USER, PASSWORD)
    return client


def test_idle_in_one_process_sees_mail_delivered_by_the_other(two_nodes):
    first, second = two_nodes
    client = login(second["imap"])
    client.select("INBOX")
    tag = client._new_tag().decode()
    client.send(f"{tag} IDLE\r\n".encode())
    assert client.readline().startswith(b"+")
    with smtplib.SMTP("127.0.0.1", first["smtp"]) as smtp:
        smtp.sendmail("bob@remote.test", [USER], b"Subject: across processes\r\n\r\nhi\r\n")
    accepted = time.monotonic()
    client.sock.settimeout(5)
    line = client.readline()
    latency = time.monotonic() - accepted
    assert line == b"* 1 EXISTS\r\n"
    assert latency < 1.0
    assert client.readline() == b"* 1 RECENT\r\n"  # RFC 3501 7.3.2: sent as the mailbox grows
    client.send(b"DONE\r\n")
    assert client.readline().startswith(tag.encode() + b" OK")
    client.logout()


def test_uids_and_modseqs_from_two_writing_processes_are_unique_and_increasing(two_nodes):
    first, second = two_nodes
    results: dict[str, list[int]] = {"a": [], "b": []}

    def append_many(port: int, key: str) -> None:
        client = login(port)
        for i in range(15):
            typ, data = client.append("INBOX", None, None, f"Subject: {key}{i}\r\n\r\nx\r\n".encode())
            assert typ == "OK"
            # [APPENDUID uidvalidity uid]
            results[key].append(int(data[0].split(b"APPENDUID ")[1].split(b"]")[0].split()[1]))
        client.logout()

    threads = [
        threading.Thread(target=append_many, args=(first["imap"], "a")),
        threading.Thread(target=append_many, args=(second["imap"], "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    uids = results["a"] + results["b"]
    assert sorted(uids) == list(range(1, 31))
    assert results["a"] == sorted(results["a"]) and results["b"] == sorted(results["b"])
    client = login(second["imap"])
    client.select("INBOX")
    typ, data = client.fetch("1:*", "(UID MODSEQ)")
    assert typ == "OK" and len(data) == 30
    typ, status = client.status("INBOX", "(UIDNEXT MESSAGES HIGHESTMODSEQ)")
    assert b"UIDNEXT 31" in status[0] and b"MESSAGES 30" in status[0]
    client.logout()


def test_notify_in_one_process_hears_of_mailboxes_changed_through_the_other(two_nodes):
    """IMAP NOTIFY (RFC 5465) across processes: a session on node2 watching its personal
    mailboxes is told, without sending a command, of a mailbox created on node1 (LIST) and of
    mail delivered into it there (STATUS)."""
    first, second = two_nodes
    watcher = login(second["imap"])
    tag = watcher._new_tag().decode()
    watcher.send(f"{tag} NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))\r\n".encode())
    assert watcher.readline().startswith(tag.encode() + b" OK")
    changer = login(first["imap"])
    changer.create("Across")
    watcher.sock.settimeout(5)
    assert watcher.readline() == b'* LIST (\\HasNoChildren \\Subscribed) "/" Across\r\n'
    changer.append("Across", None, None, b"Subject: over there\r\n\r\nhi\r\n")
    line = watcher.readline()
    assert line.startswith(b"* STATUS Across (MESSAGES 1 UIDNEXT 2 ")
    changer.logout()
    watcher.logout()


def recent_uids(client: imaplib.IMAP4) -> set[int]:
    typ, data = client.fetch("1:*", "(UID FLAGS)")
    assert typ == "OK"
    return {int(item.split(b"UID ")[1].split()[0]) for item in data if item and b"\\Recent" in item}


def test_each_new_message_is_recent_in_exactly_one_session_of_either_process(two_nodes):
    """RFC 3501 2.3.2: the recent cut lives in the database, so sessions of two processes claim
    disjoint sets that together hold every new message."""
    first, second = two_nodes
    with smtplib.SMTP("127.0.0.1", first["smtp"]) as smtp:
        for i in range(5):
            smtp.sendmail("bob@remote.test", [USER], f"Subject: r{i}\r\n\r\nhi\r\n".encode())
    clients = [login(node["imap"]) for node in (first, second) for _ in range(3)]
    claimed: list[set[int]] = [set() for _ in clients]
    barrier = threading.Barrier(len(clients))

    def select(index: int) -> None:
        barrier.wait()
        typ, _ = clients[index].select("INBOX")
        assert typ == "OK"
        claimed[index] = recent_uids(clients[index])

    threads = [threading.Thread(target=select, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(len(uids) for uids in claimed) == 5
    assert set().union(*claimed) == {1, 2, 3, 4, 5}
    status = login(second["imap"]).status("INBOX", "(RECENT)")[1][0]
    assert b"RECENT 0" in status
    for client in clients:
        client.logout()
