"""The documentation, checked where it can rot unseen: the configuration page is what the
settings say now, the README stays a front door, and no relative link leads nowhere."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from devtools import configuration_doc
from worker.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The text without code blocks and code spans, where a `[x](y)` is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats -1…"""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def test_configuration_page_is_what_the_settings_say():
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == configuration_doc.render(), (
        "docs/configuration.md is stale (a setting added, renamed, re-defaulted or its `#:` "
        "comment changed): run `make docs`")


def test_every_setting_has_its_comment():
    described = configuration_doc.comments(configuration_doc.SOURCE.read_text())
    for spec in fields(Settings):
        assert configuration_doc.meaning(spec, described.get(spec.name, ""))


def test_readme_is_a_front_door():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move the detail to docs/")


def broken_links(page: Path) -> list[str]:
    """Each relative link in `page` whose file, or whose heading in a Markdown file, is missing."""
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # http:, https:, mailto:: not ours to check offline
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            broken.append(f"{target}: no heading with that anchor in {file.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(page: Path):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_sees_what_it_should(tmp_path: Path):
    (tmp_path / "there.md").write_text("# There\n\n## Redis failover (Sentinel)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n[a](there.md) [b](there.md#redis-failover-sentinel) [c](#page)\n"
        "[d](gone.md) [e](there.md#nope) [f](https://example.com/gone.md)\n"
        "`[g](gone-in-code.md)`\n```\n[h](gone-in-a-block.md)\n```\n")
    assert broken_links(page) == ["gone.md: no such file",
                                  "there.md#nope: no heading with that anchor in there.md"]
