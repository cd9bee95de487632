"""`ssmd diff` and `ssmd commit`: pending metadata changes, through git.

Only the config dir's paths are shown or committed; whatever else is staged in
the repository stays staged and out of the commit. `commit` refuses a tree that
does not validate.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ssmd.config.problems import display_path, format_problems
from ssmd.config.tree import ConfigTree, Snapshot
from ssmd.config.validate import check_snapshot
from ssmd.exceptions import ConfigError


@dataclass(frozen=True)
class Change:
    status: str  # "added", "modified", "deleted", "renamed"
    path: str  # relative to the repository root


@dataclass(frozen=True)
class Pending:
    repo: Path
    changes: list[Change]
    patch: str


@dataclass(frozen=True)
class Committed:
    commit: str | None  # None when there was nothing to commit
    changes: list[Change]


def _git(repo: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if result.returncode not in ok:
        raise ConfigError(
            f"git {' '.join(args[:2])} failed in {repo}: {result.stderr.strip()}; expected a working "
            "git repository. Fix: run the command inside the repository that holds the config dir"
        )
    return result.stdout


def repository_of(tree: ConfigTree) -> Path:
    tree.require()
    result = subprocess.run(
        ["git", "-C", str(tree.root), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(
            f"{display_path(tree.root)} is not inside a git repository; expected the config dir to be "
            "tracked by git. Fix: run `git init` in the project root"
        )
    return Path(result.stdout.strip())


def _has_head(repo: Path) -> bool:
    probe = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "-q", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0


_STATUS = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "T": "modified",
    "?": "added",
}


def _changes(repo: Path, scope: str) -> list[Change]:
    out = _git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", scope)
    changes = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if not entry:
            continue
        code, path = entry[:2], entry[3:]
        letter = next((c for c in code if c != " "), "M")
        if letter == "R":
            next(entries, None)  # porcelain -z puts the old name of a rename in the next field
        changes.append(Change(_STATUS.get(letter, "modified"), path))
    return changes


def pending_changes(tree: ConfigTree) -> Pending:
    repo = repository_of(tree)
    scope = str(tree.root.resolve().relative_to(repo.resolve())) or "."
    changes = _changes(repo, scope)
    patch = _git(repo, "diff", "HEAD", "--", scope) if _has_head(repo) else ""
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "-z", "--", scope)
    for path in sorted(p for p in untracked.split("\0") if p):
        # Untracked files have no diff against HEAD; show them whole without touching the index.
        patch += _git(repo, "diff", "--no-index", "--", "/dev/null", path, ok=(0, 1))
    return Pending(repo, changes, patch)


def commit_changes(tree: ConfigTree, message: str) -> Committed:
    """Validate, then commit the config dir's changes (and nothing else) with `message`."""
    if not message.strip():
        raise ConfigError(
            "empty commit message; expected -m with a sentence. Fix: pass -m 'what changed and why'"
        )
    _, problems = check_snapshot(Snapshot.read(tree.require()))
    if problems:
        raise ConfigError("refusing to commit an invalid tree: " + format_problems(problems))
    repo = repository_of(tree)
    scope = str(tree.root.resolve().relative_to(repo.resolve())) or "."
    changes = _changes(repo, scope)
    if not changes:
        return Committed(None, [])
    _git(repo, "add", "-A", "--", scope)
    _git(repo, "commit", "-q", "-m", message, "--only", "--", scope)
    return Committed(_git(repo, "rev-parse", "HEAD").strip(), changes)
