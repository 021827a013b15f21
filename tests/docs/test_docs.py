"""The documentation stands alone: what README.md links to is in the repository, and every
configuration key the code reads is explained in docs/admin.md (a key nobody can look up is a key
nobody sets right)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from tidings import config

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ROOT / "docs" / "admin.md"
DESIGN = ROOT / "docs" / "design.md"


def markdown_links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("document", ["README.md", "docs/admin.md", "docs/design.md"])
def test_relative_links_point_inside_the_repository(document):
    path = ROOT / document
    for target in markdown_links(path.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{document} links outside the repository: {target}"
        assert resolved.exists(), f"{document} links to a missing file: {target}"


def test_readme_points_at_the_design_and_the_admin_guide():
    readme = (ROOT / "README.md").read_text()
    assert "docs/design.md" in readme and "docs/admin.md" in readme
    assert "../shared" not in readme
    assert DESIGN.stat().st_size > 2000 and ADMIN.stat().st_size > 2000


def config_sections():
    """(prefix, dataclass) for Config itself and each nested settings dataclass."""
    yield "", config.Config
    for field in dataclasses.fields(config.Config):
        kind = field.default_factory if field.default_factory is not dataclasses.MISSING else None
        if kind is not None and dataclasses.is_dataclass(kind):
            yield field.name, kind


def configuration_keys() -> list[str]:
    keys = []
    for prefix, cls in config_sections():
        for field in dataclasses.fields(cls):
            if prefix == "" and dataclasses.is_dataclass(field.default_factory):
                continue
            keys.append(f"{prefix}.{field.name}" if prefix else field.name)
    return keys


# Config fields whose name in the TOML file differs from the attribute.
FILE_NAMES = {"tls_cert": "tls.cert", "tls_key": "tls.key", "listen": "listen.<name>"}


@pytest.mark.parametrize("key", configuration_keys())
def test_every_configuration_key_is_documented(key):
    """Each key appears in admin.md in backquotes, spelled as in the configuration file."""
    spelled = FILE_NAMES.get(key, key)
    assert f"`{spelled}`" in ADMIN.read_text(), (
        f"configuration key {spelled} is not explained in docs/admin.md"
    )


@pytest.mark.parametrize(
    "topic", ["ports", "configuration", "tls certificates", "systemd", "fail2ban", "backups", "upgrading"]
)
def test_admin_guide_covers(topic):
    headings = [line.lower() for line in ADMIN.read_text().splitlines() if line.startswith("#")]
    assert any(topic in heading for heading in headings), f"docs/admin.md has no section on {topic}"
