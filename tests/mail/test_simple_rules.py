"""Simple rules to Sieve and back (tidings/rules/simple.py): the script is valid Sieve (sievelib's
parser, the one the rules engine is meant to use), says what the form said, and only our own
untouched scripts are read back as form values."""

from __future__ import annotations

import pytest
from sievelib.parser import Parser

from tidings.rules.simple import BadRule, Filter, Forwarding, SimpleRules, Vacation, parse, to_sieve


def sieve_ok(script: str) -> None:
    parser = Parser()
    assert parser.parse(script.encode()), parser.error


def full_rules() -> SimpleRules:
    return SimpleRules(
        filters=[
            Filter("from", "contains", "newsletter@", "fileinto", "Lists/News"),
            Filter("subject", "is", 'He said "hi" \\ bye', "seen"),
            Filter("to", "contains", "spam", "discard"),
            Filter("from", "is", "boss@example.org", "redirect", "me@elsewhere.test"),
        ],
        vacation=Vacation(
            True, "Away", "I am away.\nBack on Monday.", 5, "2026-12-20", "2027-01-03", ["ann@example.org"]
        ),
        forwarding=Forwarding(["ann@elsewhere.test"], keep=True),
    )


def test_every_form_value_becomes_valid_sieve():
    script = to_sieve(full_rules())
    sieve_ok(script)
    assert 'fileinto "Lists/News";' in script
    assert 'header :is "subject" "He said \\"hi\\" \\\\ bye"' in script
    assert 'redirect :copy "ann@elsewhere.test";' in script
    assert ':days 5 :subject "Away" :addresses ["ann@example.org"]' in script
    assert 'currentdate :value "ge" "date" "2026-12-20"' in script
    assert script.count("stop;") == 4


def test_nothing_set_is_an_empty_valid_script():
    script = to_sieve(SimpleRules())
    sieve_ok(script)
    assert "require" not in script and "vacation" not in script.split("\r\n", 2)[2]


def test_forwarding_without_a_copy_drops_the_implicit_keep():
    script = to_sieve(SimpleRules(forwarding=Forwarding(["x@far.test"], keep=False)))
    sieve_ok(script)
    assert 'redirect "x@far.test";' in script and ":copy" not in script


def test_our_script_reads_back_and_an_edited_one_does_not():
    rules = full_rules()
    script = to_sieve(rules)
    assert parse(script) == rules
    assert parse(script.replace("stop;", "keep;", 1)) is None
    assert parse('require "fileinto";\r\nfileinto "x";\r\n') is None
    assert parse(script.replace("# {", "# {broken", 1)) is None


@pytest.mark.parametrize(
    "rules",
    [
        SimpleRules(filters=[Filter("body", "contains", "x", "discard")]),
        SimpleRules(filters=[Filter("from", "contains", " ", "discard")]),
        SimpleRules(filters=[Filter("from", "contains", "x", "fileinto", "")]),
        SimpleRules(vacation=Vacation(True, "", "")),
        SimpleRules(vacation=Vacation(True, "", "away", start="next week")),
        SimpleRules(vacation=Vacation(True, "", "away", start="2026-12-20", end="2026-12-01")),
        SimpleRules(vacation=Vacation(True, "", "away", days=0)),
    ],
)
def test_form_values_a_script_cannot_carry_are_refused(rules):
    with pytest.raises(BadRule):
        to_sieve(rules)
