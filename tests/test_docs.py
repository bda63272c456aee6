"""The documentation: the site builds with warnings as errors (how CI runs `make docs`),
every relative link and image in the README and the docs pages resolves, and the README
stays a short front door."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from conftest import ROOT

DOCS = ROOT / "docs"
README_MAX_LINES = 250
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def markdown_files() -> list[Path]:
    """README.md and the hand-written docs pages (not the hook's code)."""
    pages = sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)
    return [ROOT / "README.md", *pages]


def prose(text: str) -> str:
    """The Markdown without fenced code blocks and inline code, where a `[x](y)` is no link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc (MkDocs) gives a heading; GitHub's agrees for the
    headings these pages use."""
    text = re.sub(r"<[^>]+>", "", heading).replace("`", "")
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))  # inline code stays: it is in the slug
    return {slug(h) for h in HEADING.findall(text)}


def broken_links(path: Path) -> list[str]:
    """Relative links and images in `path` whose file (or heading, for an anchor into a
    Markdown file) does not exist."""
    bad = []
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("/"):
            continue  # http(s)://, mailto: ...: not a file of the repository
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{name}: {target} (no heading #{anchor})")
    return bad


def test_docs_build_strict(tmp_path):
    """`mkdocs build --strict`, as `make docs` runs it: broken links and anchors, pages
    missing from the nav and unreadable docstrings are errors."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed; `make install` installs the docs extra")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"mkdocs build --strict: {seconds:.1f} s")
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    assert (site / "extending.html").is_file()  # use_directory_urls: false, pages open from disk
    api = (site / "reference" / "api" / "results.html").read_text(encoding="utf-8")
    assert "labelbench.results.leaderboard" in api  # the API reference came from docstrings
    # The repository's own result tables are carried into the site by the hook.
    assert (site / "repo" / "results" / "reference" / "demo.html").is_file()


def test_docs_and_readme_relative_links_resolve():
    """Every relative link and image in the README and in docs/ names a file that exists,
    and every anchor into a Markdown file names one of its headings."""
    files = markdown_files()
    assert len(files) > 20, files
    bad = [line for path in files for line in broken_links(path)]
    assert not bad, "\n".join(bad)


def test_readme_links_into_the_docs_and_shows_the_dashboard():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = LINK.findall(prose(readme))
    assert "docs/assets/dashboard.png" in targets
    assert {"docs/index.md", "docs/concepts.md", "docs/extending.md"} <= set(targets)
    assert "make test" in readme  # CI's test command is the README's


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES}"


def test_link_checker_finds_broken_links(tmp_path):
    """The checker above is not vacuous: a missing file, a missing heading and a missing
    image are reported; code spans and URLs are not links."""
    (tmp_path / "other.md").write_text("# A heading: with `code`\n\ntext\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading-with-code) [gone](missing.md) [bad anchor](other.md#nope)\n"
        "![img](pic.png) `[code](nowhere.md)` [web](https://example.org/x.md)\n"
        "```\n[fenced](nowhere.md)\n```\n## Local\n[self](#local) [self bad](#elsewhere)\n"
    )
    bad = broken_links(page)
    assert [b.split(": ", 1)[1] for b in bad] == [
        "missing.md (no such file)",
        "other.md#nope (no heading #nope)",
        "pic.png (no such file)",
        "#elsewhere (no heading #elsewhere)",
    ], bad
