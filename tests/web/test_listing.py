"""The message list over HTTP: sorting by date, sender, subject and size, and paging."""

from __future__ import annotations

import re

from tidings.web.listing import PAGE_SIZE


def subjects(html: str) -> list[str]:
    return re.findall(r'<span class="subject">(?:<span[^>]*>[^<]*</span>)*([^<]*)</span>', html)


def test_sorting_and_paging(web):
    account = web.call(web.store.accounts.get_user("alice@example.test"))
    inbox = web.mailbox_id("alice@example.test")
    count = PAGE_SIZE + 5
    for n in range(count):
        # Subjects and senders in another order than arrival; sizes grow with n.
        raw = (
            f"From: sender{(n * 7) % count:03d}@elsewhere.test\r\nTo: alice@example.test\r\n"
            f"Subject: topic {(n * 13) % count:03d}\r\nMessage-ID: <m{n}@elsewhere.test>\r\n\r\n"
            + "x" * (100 + n * 10)
            + "\r\n"
        ).encode()
        web.call(web.store.mailboxes.append(account.id, inbox, raw))
    client = web.client("alice@example.test")
    newest = client.get(f"/mail/{inbox}")
    assert f"1–{PAGE_SIZE} of {count}" in newest.text
    first = subjects(newest.text)
    assert len(first) == PAGE_SIZE and first[0] == f"topic {((count - 1) * 13) % count:03d}"
    older = client.get(f"/mail/{inbox}?sort=-date&page=2")
    assert f"{PAGE_SIZE + 1}–{count} of {count}" in older.text
    assert subjects(older.text)[-1] == "topic 000"
    assert set(first).isdisjoint(subjects(older.text))
    by_subject = subjects(client.get(f"/mail/{inbox}?sort=subject").text)
    assert by_subject == [f"topic {n:03d}" for n in range(PAGE_SIZE)]
    by_subject_desc = subjects(client.get(f"/mail/{inbox}?sort=-subject&page=2").text)
    assert by_subject_desc == [f"topic {n:03d}" for n in range(4, -1, -1)]
    by_size = subjects(client.get(f"/mail/{inbox}?sort=size").text)
    assert by_size[0] == "topic 000" and by_size[1] == "topic 013"
    senders = re.findall(
        r'<span class="from"[^>]*>(?:<span[^>]*></span>)?([^<]*)</span>',
        client.get(f"/mail/{inbox}?sort=from").text,
    )
    assert senders[:3] == ["sender000@elsewhere.test", "sender001@elsewhere.test", "sender002@elsewhere.test"]
    # Out-of-range and nonsense parameters fall back to something sensible.
    assert client.get(f"/mail/{inbox}?page=999").status == 200
    assert client.get(f"/mail/{inbox}?sort=evil&page=-3").status == 200
