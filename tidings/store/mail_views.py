"""Reads the web client needs beyond what IMAP asks of `mailboxes`: one message by UID, and a
mailbox's UIDs in sender or subject order (a page of a big mailbox sorted by subject must not
parse every message's summary).

Every call takes the acting account and answers NotFound for a mailbox that is not its own,
exactly as for one that does not exist.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select

from tidings.store import schema as s
from tidings.store.database import Database, NotFound, Tx
from tidings.store.mailboxes import _REF_COLUMNS, MessageRef, _check_owner, _ref

_mm, _m = s.mailbox_messages, s.messages
_REF_BY_UID = (
    select(*_REF_COLUMNS)
    .select_from(_mm.join(_m, _m.c.id == _mm.c.message_id))
    .where(_mm.c.mailbox_id == bindparam("mailbox"), _mm.c.uid == bindparam("uid"))
)
SORT_COLUMNS = {"from": _m.c.from_addr, "subject": _m.c.subject}


class MailViews:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def message(self, account_id: int, mailbox_id: int, uid: int) -> MessageRef:
        """The message `uid` of the account's mailbox; NotFound if either is not there."""

        def op(tx: Tx) -> MessageRef:
            _check_owner(tx, account_id, mailbox_id)
            row = tx.conn.execute(_REF_BY_UID, {"mailbox": mailbox_id, "uid": uid}).first()
            if row is None:
                raise NotFound("no such message")
            return _ref(row)

        return await self.db.read(op)

    async def uids_sorted_by(self, account_id: int, mailbox_id: int, key: str, descending: bool) -> list[int]:
        """Every UID of the account's mailbox ordered by sender address or subject (case folded;
        messages not analysed yet sort as empty), ties by UID in the same direction."""
        column = func.lower(func.coalesce(SORT_COLUMNS[key], ""))
        order = (column.desc(), _mm.c.uid.desc()) if descending else (column, _mm.c.uid)
        query = (
            select(_mm.c.uid)
            .select_from(_mm.join(_m, _m.c.id == _mm.c.message_id))
            .where(_mm.c.mailbox_id == mailbox_id)
            .order_by(*order)
        )

        def op(tx: Tx) -> list[int]:
            _check_owner(tx, account_id, mailbox_id)
            return list(tx.conn.execute(query).scalars())

        return await self.db.read_in_thread(op)
