"""IMAP THREAD algorithms and base subjects (RFC 5256).

* `base_subject` -- section 2.1, also used by SORT SUBJECT.
* `thread_orderedsubject` and `thread_references` -- sections 3.1 ("ORDEREDSUBJECT") and 3.2
  ("REFERENCES"). Both take `ThreadMessage`s and return a list of `ThreadNode` trees;
  `format_threads` writes them as the THREAD response data, e.g. `(1 2)(3 (4)(5))`.

Message ids in the output are whatever the caller puts in `ThreadMessage.id` (sequence numbers
or UIDs). The caller also decides the date: RFC 5256 says to use the internal date when the
sent date is missing, so pass that in `sent_date`. Everything is iterative: reply chains can be
thousands deep and must not hit Python's recursion limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tidings.mail.headers import decode_rfc2047

# --- base subject (RFC 5256 section 2.1) -------------------------------------------------------

_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP ; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_REFWD_LEADER = re.compile(rf"(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:", re.I)
_LEADING_BLOB = re.compile(_BLOB)
_ASCII_CASEMAP = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_casemap(text: str) -> str:
    """The i;ascii-casemap comparator key (RFC 4790): only a-z are folded."""
    return text.translate(_ASCII_CASEMAP)


def base_subject_and_reply(subject: str) -> tuple[str, bool]:
    """(base subject, whether the subject marks a reply or forward) per RFC 5256 section 2.1.

    A reply or forward is a subject from which a subj-refwd, a "(fwd)" trailer or a
    "[fwd: ...]" wrapper was removed (section 2.1, last paragraph)."""
    text = " ".join(decode_rfc2047(subject).split())  # (1) decode, tabs/folds/runs -> one space
    is_reply = False
    while True:
        # (2) trailing "(fwd)" and whitespace
        while True:
            text = text.rstrip(" \t")
            if text[-5:].lower() == "(fwd)":
                text = text[:-5]
                is_reply = True
                continue
            break
        # (3)-(5) leaders and a leading blob, until nothing changes
        while True:
            before = text
            while True:
                stripped = text.lstrip(" \t")
                match = _REFWD_LEADER.match(stripped)
                if match is not None:
                    is_reply = True
                    stripped = stripped[match.end() :]
                if stripped == text:
                    break
                text = stripped
            match = _LEADING_BLOB.match(text)
            if match is not None and text[match.end() :]:
                text = text[match.end() :]
            if text == before:
                break
        # (6) "[fwd: ...]" wrapper
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            is_reply = True
            continue
        return text, is_reply


def base_subject(subject: str) -> str:
    """The RFC 5256 base subject: decoded, without Re:/Fwd:/[blob] prefixes and (fwd) trailers."""
    return base_subject_and_reply(subject)[0]


# --- thread trees -------------------------------------------------------------------------------

_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class ThreadMessage:
    """What threading needs of one message. `message_id`, `references` and `in_reply_to` hold
    "<id>" strings as `MessageSummary` stores them; `is_reply` follows `base_subject_and_reply`."""

    id: int
    base_subject: str
    sent_date: datetime | None
    message_id: str | None = None
    references: list[str] = field(default_factory=list)
    in_reply_to: str | None = None
    is_reply: bool = False


@dataclass(slots=True)
class ThreadNode:
    """A node of a thread tree; `id` None is a dummy (only ever at the top of a thread)."""

    id: int | None
    children: list[ThreadNode] = field(default_factory=list)


def _date_key(message: ThreadMessage) -> tuple[datetime, int]:
    date = message.sent_date or _EPOCH
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return date, message.id


def thread_orderedsubject(messages: Iterable[ThreadMessage]) -> list[ThreadNode]:
    """ORDEREDSUBJECT (RFC 5256 section 3.1): group by base subject, the earliest message is the
    parent of all others; threads ordered by their first message's sent date."""
    ordered = sorted(messages, key=lambda m: (ascii_casemap(m.base_subject), _date_key(m)))
    threads: list[tuple[tuple[datetime, int], ThreadNode]] = []
    current_subject: str | None = None
    for message in ordered:
        subject = ascii_casemap(message.base_subject)
        if subject != current_subject or not threads:
            threads.append((_date_key(message), ThreadNode(message.id)))
            current_subject = subject
        else:
            threads[-1][1].children.append(ThreadNode(message.id))
    threads.sort(key=lambda item: item[0])
    return [node for _key, node in threads]


class _Container:
    __slots__ = ("message", "parent", "children")

    def __init__(self, message: ThreadMessage | None = None) -> None:
        self.message = message
        self.parent: _Container | None = None
        self.children: list[_Container] = []

    def is_ancestor_of(self, other: _Container) -> bool:
        node: _Container | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    def sort_key(self) -> tuple[datetime, int]:
        if self.message is not None:
            return _date_key(self.message)
        return self.children[0].sort_key() if self.children else (_EPOCH, 0)


def _link(parent: _Container, child: _Container) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _would_loop(parent: _Container, child: _Container) -> bool:
    return child.is_ancestor_of(parent)


def _post_order(roots: list[_Container]) -> list[_Container]:
    order: list[_Container] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    order.reverse()  # children before their parents
    return order


def thread_references(messages: Iterable[ThreadMessage]) -> list[ThreadNode]:
    """REFERENCES (RFC 5256 section 3.2): threads from References/In-Reply-To, then threads
    with the same base subject gathered, siblings sorted by sent date."""
    by_id: dict[str, _Container] = {}
    containers: list[_Container] = []
    for message in sorted(messages, key=lambda m: m.id):
        # Step 1: the first message with a Message-ID owns it; duplicates and messages
        # without one get a container of their own.
        own = by_id.get(message.message_id) if message.message_id else None
        if own is not None and own.message is None:
            own.message = message
        else:
            own = _Container(message)
            if message.message_id and message.message_id not in by_id:
                by_id[message.message_id] = own
        containers.append(own)

        references = list(message.references)
        if not references and message.in_reply_to:
            references = [message.in_reply_to]
        # (1.A) chain the references, keeping existing links and refusing loops
        previous: _Container | None = None
        for reference in references:
            container = by_id.get(reference)
            if container is None:
                container = by_id[reference] = _Container()
            linkable = previous is not None and container is not previous and container.parent is None
            if linkable and not _would_loop(previous, container):
                _link(previous, container)
            previous = container
        # (1.B) the last reference is the parent: "break the current parent/child link before
        # creating the new correct one", and create it only if it makes no loop -- a message
        # whose last reference is its own descendant thus becomes a root (as Dovecot does).
        if own.parent is not None:
            own.parent.children.remove(own)
            own.parent = None
        if previous is not None and previous is not own and not _would_loop(previous, own):
            _link(previous, own)

    # Step 2: the root set.
    roots = [c for c in set(by_id.values()) | set(containers) if c.parent is None]
    roots.sort(key=lambda c: c.message.id if c.message else 0)

    # Step 4: prune dummies, children first.
    for node in _post_order(roots):
        pruned: list[_Container] = []
        for child in node.children:
            if child.message is None:
                for grandchild in child.children:
                    grandchild.parent = node
                pruned.extend(child.children)
            else:
                pruned.append(child)
        node.children = pruned
    top: list[_Container] = []
    for root in roots:
        if root.message is None and not root.children:
            continue
        if root.message is None and len(root.children) == 1:
            only = root.children[0]
            only.parent = None
            top.append(only)
        else:
            top.append(root)
    for root in top:
        root.children.sort(key=_Container.sort_key)
    top.sort(key=_Container.sort_key)

    # Step 5: gather threads with the same base subject.
    def thread_subject(container: _Container) -> tuple[str, bool]:
        message = container.message or (container.children[0].message if container.children else None)
        if message is None:
            return "", False
        return ascii_casemap(message.base_subject), message.is_reply

    table: dict[str, _Container] = {}
    for root in top:
        subject, is_reply = thread_subject(root)
        if not subject:
            continue
        held = table.get(subject)
        # Prefer a dummy, then a message that is not a reply, as the thread to merge into.
        replaces = held is not None and held.message is not None
        replaces = replaces and (root.message is None or (held.message.is_reply and not is_reply))
        if held is None or replaces:
            table[subject] = root
    merged_top: list[_Container] = []
    position: dict[int, int] = {}  # id(container) -> index in merged_top
    for root in top:
        subject, is_reply = thread_subject(root)
        held = table.get(subject) if subject else None
        if held is None or held is root:
            position[id(root)] = len(merged_top)
            merged_top.append(root)
            continue
        if held.message is None and root.message is None:
            for child in root.children:
                child.parent = held
            held.children.extend(root.children)
            root.children = []
        elif held.message is None or (root.message is not None and is_reply and not held.message.is_reply):
            _link(held, root)
        else:
            dummy = _Container()
            _link(dummy, held)
            _link(dummy, root)
            table[subject] = dummy
            index = position.pop(id(held), None)
            if index is None:  # `held` comes later in `top`; it is a child now, skipped there
                index = len(merged_top)
                merged_top.append(dummy)
            merged_top[index] = dummy
            position[id(dummy)] = index
    final_top = [c for c in merged_top if c.parent is None and (c.message is not None or c.children)]

    # Step 6: sort every set of siblings by sent date, deepest first.
    for node in _post_order(final_top):
        node.children.sort(key=_Container.sort_key)
    final_top.sort(key=_Container.sort_key)
    return [_to_node(root) for root in final_top]


def _to_node(root: _Container) -> ThreadNode:
    result = ThreadNode(root.message.id if root.message else None)
    stack = [(root, result)]
    while stack:
        container, node = stack.pop()
        for child in container.children:
            child_node = ThreadNode(child.message.id if child.message else None)
            node.children.append(child_node)
            stack.append((child, child_node))
    return result


def format_threads(threads: list[ThreadNode]) -> str:
    """THREAD response data (RFC 5256 section 4): `(3 6 (4 23)(44 7 96))`, dummies as `((1)(2))`."""
    out: list[str] = []
    stack: list[ThreadNode | str] = []
    for thread in reversed(threads):
        stack += [")", thread, "("]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node = item
        chain: list[str] = []
        while node.id is not None:
            chain.append(str(node.id))
            if len(node.children) != 1:
                break
            node = node.children[0]
        out.append(" ".join(chain))
        if node.children:
            if chain:
                out.append(" ")
            for child in reversed(node.children):
                stack += [")", child, "("]
    return "".join(out)
