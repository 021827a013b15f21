"""Contacts, calendars and journals as data: vCard (RFC 6350, 2426) and iCalendar (RFC 5545).

Pure functions over text, no I/O and no SQL: checking an object a client sends, deriving the
columns the store indexes it by, splitting an import into objects and joining objects into an
export, expanding recurrences, and turning web forms into objects and back. The store
(`store/pim.py`), the web client and CalDAV/CardDAV all use this package, so the three agree on
what an object means. Parsing is left to well-kept libraries: `icalendar` (with
`recurring-ical-events` for RRULE/RDATE/EXDATE and overridden instances) and `vobject` for vCards.
"""

from __future__ import annotations


class InvalidObject(ValueError):
    """Text that is not one acceptable vCard or iCalendar object; the message says why."""
