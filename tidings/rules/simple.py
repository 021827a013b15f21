"""Simple rules (filters, vacation, forwarding) as a Sieve script, and back.

People who do not write Sieve set rules in a form: the web client's settings, and later
`tidings user forward|vacation`. They are stored as an ordinary Sieve script (store/rules.py,
SCRIPT_NAME) so that the rules engine, ManageSieve and every Sieve-aware client see exactly what
runs. The form's own values ride along as JSON in the script's second comment line; `parse` gives
them back only when the script is still exactly what `to_sieve` makes of them, so a script edited
elsewhere is never shown (and silently rewritten) as if it were the form's.

Pure: no I/O, no store. Extensions used: fileinto, imap4flags, copy (RFC 3894), vacation
(RFC 5230) and date (RFC 5260, currentdate for the vacation's dates).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date

SCRIPT_NAME = "tidings-web"
MARKER = "# tidings simple rules v1"

FIELDS = {"from": "From", "to": "To or Cc", "subject": "Subject"}
MATCHES = {"contains": "contains", "is": "is exactly"}
ACTIONS = {
    "fileinto": "move to folder",
    "seen": "mark as read",
    "discard": "delete",
    "redirect": "forward to",
}
MAX_FILTERS = 100
MAX_TEXT = 10_000


class BadRule(ValueError):
    """A form value the script cannot carry (the message says which)."""


@dataclass
class Filter:
    field: str  # FIELDS
    match: str  # MATCHES
    value: str
    action: str  # ACTIONS
    target: str = ""  # the folder (fileinto) or the address (redirect)


@dataclass
class Vacation:
    enabled: bool = False
    subject: str = ""
    message: str = ""
    days: int = 7
    start: str = ""  # YYYY-MM-DD or ""
    end: str = ""
    addresses: list[str] = field(default_factory=list)  # the account's own addresses (RFC 5230 4.5)


@dataclass
class Forwarding:
    targets: list[str] = field(default_factory=list)
    keep: bool = True  # also keep a copy here


@dataclass
class SimpleRules:
    filters: list[Filter] = field(default_factory=list)
    vacation: Vacation = field(default_factory=Vacation)
    forwarding: Forwarding = field(default_factory=Forwarding)

    def check(self) -> None:
        if len(self.filters) > MAX_FILTERS:
            raise BadRule(f"at most {MAX_FILTERS} filters")
        for rule in self.filters:
            if rule.field not in FIELDS or rule.match not in MATCHES or rule.action not in ACTIONS:
                raise BadRule("unknown filter field, comparison or action")
            if not rule.value.strip():
                raise BadRule("a filter needs something to look for")
            if rule.action in ("fileinto", "redirect") and not rule.target.strip():
                raise BadRule(f"'{ACTIONS[rule.action]}' needs a target")
        v = self.vacation
        if not 1 <= v.days <= 365:
            raise BadRule("the vacation reply repeats after 1 to 365 days")
        for text in (v.start, v.end):
            if text:
                try:
                    date.fromisoformat(text)
                except ValueError:
                    raise BadRule(f"not a date: {text!r} (use YYYY-MM-DD)") from None
        if v.start and v.end and v.end < v.start:
            raise BadRule("the vacation ends before it starts")
        if v.enabled and not v.message.strip():
            raise BadRule("the vacation reply needs a message")
        if any(len(t) > MAX_TEXT for t in (v.subject, v.message)):
            raise BadRule(f"the vacation message is longer than {MAX_TEXT} characters")
        if any(len(f.value) > 1000 or len(f.target) > 1000 for f in self.filters):
            raise BadRule("a filter value is longer than 1000 characters")


def quote(text: str) -> str:
    """A Sieve quoted string (RFC 5228 2.4.2): backslash and double quote escaped; line ends CRLF."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string_list(items: list[str]) -> str:
    return "[" + ", ".join(quote(i) for i in items) + "]"


def to_sieve(rules: SimpleRules) -> str:
    """The script for `rules` (checked first): vacation, then forwarding, then the filters in order."""
    rules.check()
    needs: set[str] = set()
    body: list[str] = []
    v = rules.vacation
    if v.enabled:
        needs.add("vacation")
        args = [f":days {v.days}"]
        if v.subject.strip():
            args.append(f":subject {quote(v.subject.strip())}")
        if v.addresses:
            args.append(f":addresses {_string_list(v.addresses)}")
        reply = f"vacation {' '.join(args)} {quote(v.message)};"
        tests = []
        if v.start:
            tests.append(f'currentdate :value "ge" "date" {quote(v.start)}')
        if v.end:
            tests.append(f'currentdate :value "le" "date" {quote(v.end)}')
        if tests:
            needs.update(("date", "relational"))
            condition = tests[0] if len(tests) == 1 else f"allof({', '.join(tests)})"
            body += [f"if {condition} {{", f"    {reply}", "}"]
        else:
            body.append(reply)
    f = rules.forwarding
    for target in f.targets:
        if f.keep:
            needs.add("copy")
        body.append(f"redirect {':copy ' if f.keep else ''}{quote(target)};")
    for rule in rules.filters:
        values = quote(rule.value)
        if rule.field == "subject":
            test = f'header :{rule.match} "subject" {values}'
        elif rule.field == "from":
            test = f'address :all :{rule.match} "from" {values}'
        else:
            test = f'address :all :{rule.match} ["to", "cc"] {values}'
        if rule.action == "fileinto":
            needs.add("fileinto")
            act = f"fileinto {quote(rule.target)};"
        elif rule.action == "seen":
            needs.add("imap4flags")
            act = 'addflag "\\\\Seen";'
        elif rule.action == "discard":
            act = "discard;"
        else:
            act = f"redirect {quote(rule.target)};"
        body += [f"if {test} {{", f"    {act}", "    stop;", "}"]
    model = json.dumps(asdict(rules), separators=(",", ":"), sort_keys=True)
    lines = [MARKER, f"# {model}"]
    if needs:
        lines.append(f"require {_string_list(sorted(needs))};")
    lines += body
    return "\r\n".join(lines) + "\r\n"


def parse(script: str) -> SimpleRules | None:
    """The rules a script generated by `to_sieve` was made from; None for any other script
    (written by hand, by another client, or edited since)."""
    lines = script.split("\r\n", 2)
    if len(lines) < 3 or lines[0] != MARKER or not lines[1].startswith("# "):
        return None
    try:
        data = json.loads(lines[1][2:])
        rules = SimpleRules(
            [Filter(**item) for item in data["filters"]],
            Vacation(**data["vacation"]),
            Forwarding(**data["forwarding"]),
        )
        regenerated = to_sieve(rules)
    except (ValueError, TypeError, KeyError, BadRule):
        return None
    return rules if regenerated == script else None


_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


def looks_like_address(text: str) -> bool:
    return bool(_ADDRESS.match(text))
