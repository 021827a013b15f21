"""A POP3 maildrop: the snapshot of an account's INBOX taken at login (its lock: tidings.store.locks).

RFC 1939 section 5: message numbers are assigned at login and stay fixed for the session; messages
marked deleted are hidden from every command but stay numbered; nothing is removed before QUIT
(UPDATE state). This module only keeps that bookkeeping; it never touches the store itself.

Unique ids (UIDL, RFC 1939 section 7) are "<uidvalidity>.<uid>" of the INBOX: stable across sessions
and never reused for another message, as IMAP guarantees for the pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tidings.pop3.errors import Refused
from tidings.store.mailboxes import Mailbox, MessageRef


@dataclass
class MaildropMessage:
    number: int
    uid: int
    blob_hash: str
    size: int  # octets as stored (see the size note in session.py)
    unique_id: str
    deleted: bool = False
    retrieved: bool = False  # RETR sent it in full: marked \Seen at QUIT
    vanished: bool = False  # expunged by another session (IMAP) after our snapshot


class Maildrop:
    def __init__(self, account_id: int, mailbox: Mailbox, refs: Iterable[MessageRef]) -> None:
        self.account_id = account_id
        self.mailbox_id = mailbox.id
        # The store's modseq at the snapshot: later expunges are looked up relative to it.
        self.modseq = mailbox.highestmodseq
        self.messages = [
            MaildropMessage(number, ref.uid, ref.blob_hash, ref.size, f"{mailbox.uidvalidity}.{ref.uid}")
            for number, ref in enumerate(refs, start=1)
        ]
        self._by_uid = {m.uid: m for m in self.messages}

    def message(self, number: int) -> MaildropMessage:
        """The message with this number; -ERR if there is none or it is marked deleted."""
        if not 1 <= number <= len(self.messages):
            raise Refused(f"no message {number}")
        message = self.messages[number - 1]
        if message.deleted:
            raise Refused(f"message {number} is deleted")
        return message

    def present(self) -> list[MaildropMessage]:
        return [m for m in self.messages if not m.deleted]

    def totals(self) -> tuple[int, int]:
        """(count, octets) of the messages not marked deleted: STAT and the login reply."""
        present = self.present()
        return len(present), sum(m.size for m in present)

    def delete(self, number: int) -> None:
        self.message(number).deleted = True

    def reset(self) -> None:
        for message in self.messages:
            message.deleted = False

    def mark_vanished(self, uids: Iterable[int]) -> None:
        for uid in uids:
            message = self._by_uid.get(uid)
            if message is not None:
                message.vanished = True

    def deleted_uids(self) -> list[int]:
        return [m.uid for m in self.messages if m.deleted and not m.vanished]

    def seen_uids(self) -> list[int]:
        return [m.uid for m in self.messages if m.retrieved and not m.deleted and not m.vanished]
