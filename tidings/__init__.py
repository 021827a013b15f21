"""Tidings: one self-hosted program for mail, calendars, chat and calls."""
