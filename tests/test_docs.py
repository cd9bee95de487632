"""The documentation stands alone: every relative link resolves, and no file of the
project cites a document that is not in the repository."""

from __future__ import annotations

import re
import subprocess

from _support import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
CITED_DOC = re.compile(r"\b([A-Za-z][\w-]*\.md)\b")


def _tracked(*patterns: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_relative_links_in_the_docs_resolve() -> None:
    broken = []
    for name in _tracked("*.md"):
        doc = ROOT / name
        for target in LINK.findall(doc.read_text()):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            path = target.split("#", 1)[0]
            if path and not (doc.parent / path).exists():
                broken.append(f"{name}: {target}")
    assert not broken


def test_sources_cite_only_documents_that_exist() -> None:
    docs = {p.rsplit("/", 1)[-1] for p in _tracked("*.md")}
    missing = []
    for name in _tracked("*.py", "*.rs", "*.md", "justfile", "*.toml"):
        for cited in CITED_DOC.findall((ROOT / name).read_text()):
            if cited not in docs:
                missing.append(f"{name}: {cited}")
    assert not missing
