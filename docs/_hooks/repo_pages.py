"""MkDocs hook: the repository's own Markdown tables (reference leaderboards, the CPU twins'
pages, the published numbers' notes, the plugin example's README) become pages of the site,
under `repo/<their path>`.

The docs link to them as files of the repository (`../results/reference/demo.md`), so the
same links work on GitHub and offline; this hook points those links at the copies in the
site. The files stay where they are: `make reference` and `labelbench reproduce` rewrite
them, and the site always shows the committed version.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "repo/"
PATTERNS = (
    "results/reference/*.md",
    "results/reproduce/*.md",
    "results/published/README.md",
    "examples/my_method/README.md",
)
# A Markdown link or image target: ](target) or ](target#anchor), no spaces inside.
LINK = re.compile(r"(\]\()([^)\s]+?)(#[^)\s]*)?(\))")


def repo_paths() -> list[str]:
    """The repository files the site carries, as POSIX paths from the repository root."""
    return sorted(
        p.relative_to(ROOT).as_posix() for pattern in PATTERNS for p in ROOT.glob(pattern)
    )


def on_files(files: Files, config) -> Files:
    for rel in repo_paths():
        # NOT_IN_NAV: a page `labelbench reproduce` or `make reference` writes later, not
        # yet in mkdocs.yml's nav, is carried without failing the strict build
        files.append(
            File.generated(
                config,
                PREFIX + rel,
                abs_src_path=str(ROOT / rel),
                inclusion=InclusionLevel.NOT_IN_NAV,
            )
        )
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Point links that leave docs/ for a carried repository file at its copy."""
    carried = set(repo_paths())
    here = posixpath.dirname(page.file.src_uri)

    def swap(match: re.Match) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        resolved = posixpath.normpath(posixpath.join(here, target))
        if not resolved.startswith("../"):
            return match.group(0)
        rel = resolved[3:]
        if rel not in carried:
            return match.group(0)  # left alone: MkDocs reports it as a broken link
        new = posixpath.relpath(PREFIX + rel, here or ".")
        return f"{match.group(1)}{new}{match.group(3) or ''}{match.group(4)}"

    return LINK.sub(swap, markdown)
