"""Fixtures for interop tests with real mail clients: a running server with one mailbox owner,
delivery over SMTP or straight into the store, and reads of the store to check what clients did."""

from __future__ import annotations

import shutil
import smtplib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.clients import client_tls  # noqa: F401  (re-exported to the tests)

ALICE = "alice@example.test"
PASSWORD = "correct horse 1"


def message(
    subject: str, body: str = "Hello.\r\n", to: str = ALICE, sender: str = "bob@example.test"
) -> bytes:
    return (
        f"From: Bob <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\n{body}"
    ).encode()


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; that value, or AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class MailServer:
    """A RunningServer with ALICE, plus the store reads the interop tests check against."""

    def __init__(self, running, address: str = ALICE, create_user: bool = True) -> None:
        self.running = running
        self.ports = running.ports
        self.address = address
        if create_user:
            running.add_user(address, PASSWORD)

    @property
    def cert_path(self):
        return self.running.config.cert_path

    def deliver(self, raw: bytes, mailbox: str = "INBOX") -> None:
        """Deliver straight into the store (no SMTP)."""
        store = self.running.store
        assert self.running.call(store.delivery.deliver_local(self.address, raw, mailbox=mailbox))

    def send_smtp(self, raw: bytes, sender: str = "bob@example.test") -> None:
        """Deliver through the MX listener, as another server would."""
        with smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=10) as smtp:
            smtp.sendmail(sender, [self.address], raw)

    def refs(self, name: str = "INBOX"):
        """[MessageRef] of one mailbox, straight from the store."""
        return self.snapshot(name)[1]

    def snapshot(self, name: str = "INBOX"):
        """(Mailbox, [MessageRef]) of one mailbox, straight from the store."""
        store = self.running.store

        async def read():
            account = await store.accounts.get_user(self.address)
            box = await store.mailboxes.get(account.id, name)
            return await store.mailboxes.messages(account.id, box.id)

        return self.running.call(read())

    def status(self, name: str = "INBOX"):
        store = self.running.store

        async def read():
            account = await store.accounts.get_user(self.address)
            box = await store.mailboxes.get(account.id, name)
            return await store.mailboxes.status(account.id, box.id)

        return self.running.call(read())

    def mailbox_names(self) -> list[str]:
        store = self.running.store

        async def read():
            account = await store.accounts.get_user(self.address)
            return [box.name for box in await store.mailboxes.list(account.id)]

        return self.running.call(read())

    def subjects(self, name: str = "INBOX") -> list[str]:
        """Subjects of a mailbox's messages in UID order, read from the stored blobs."""
        store = self.running.store
        out = []
        for ref in self.refs(name):
            raw = self.running.call(store.mailboxes.read_blob(ref.blob_hash))
            out.append(subject_of(raw))
        return out


def subject_of(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"subject:"):
            return line.split(b":", 1)[1].strip().decode()
        if not line.strip():
            break
    return ""


@pytest.fixture
def mail(make_server) -> MailServer:
    """All mail listeners, default settings (no plaintext login), user ALICE."""
    return MailServer(make_server("mail"))


@pytest.fixture
def plain_mail(make_server) -> MailServer:
    """Like `mail` but plaintext login allowed without TLS, for clients that are easier to run so."""
    from tidings.config import AuthSettings

    return MailServer(make_server("mail", auth=AuthSettings(allow_plaintext=True)))


def maildir_tree(root: Path) -> list[str]:
    """Every file of a Maildir (names include the flags), for before/after comparisons."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def set_local_flags(path: Path, flags: str) -> Path:
    """Maildir flags live in the file name after ":2," (and flagged files belong in cur/)."""
    base = path.name.split(":2,")[0]
    target = path.parent.parent / "cur" / f"{base}:2,{flags}"
    path.rename(target)
    return target
