"""The spool's journal of sequences done without a file (book checkpoints)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ssmd import core
from ssmd.archiver.spool import COVERED, Spool, read_journal

# A process that commits a batch (durable, then acked) and dies before any checkpoint.
_CRASHING = """
import os, sys
from pathlib import Path
from ssmd import core
from ssmd.archiver.spool import Spool
spool = Spool(Path(sys.argv[1]), checkpoint_interval=3600)
spool.append("raw", "e/f/2026/07/20/trade-14.jsonl.zst", core.Chunk([b"{}\\n"], [(1, 10)]))
spool.cover(core.Chunk([b"", b""], [(2, 20), (3, 30)]))
spool.commit()
os._exit(9)
"""


def test_covered_sequences_come_back_from_the_journal_after_a_crash(tmp_path: Path) -> None:
    crashed = subprocess.run([sys.executable, "-c", _CRASHING, str(tmp_path)], check=False)
    assert crashed.returncode == 9
    kinds = [(store, seq) for store, _, seq, _, _ in read_journal(tmp_path / "journal.bin")]
    assert kinds == [("raw", 1), (COVERED, 2), (COVERED, 3)]
    # the next process finds them in the journal and hands them over before its checkpoint
    saved: list[list[tuple[int, int]]] = []
    covered: list[tuple[int, int]] = []
    again = Spool(tmp_path, on_checkpoint=lambda: saved.append(list(covered)))
    files = again.recover(0, covered=lambda seq, ts: covered.append((seq, ts)))
    assert covered == [(2, 20), (3, 30)]
    assert saved == [[(2, 20), (3, 30)]], "the state is saved with them before the journal empties"
    assert [sf.recovered for sf in files] == [[(1, 10)]]
    assert list(read_journal(again.journal_path)) == []
    again.close()


def test_a_journal_of_covered_sequences_only_is_checkpointed(tmp_path: Path) -> None:
    checkpoints: list[int] = []
    spool = Spool(tmp_path, checkpoint_interval=0, on_checkpoint=lambda: checkpoints.append(1))
    spool.cover(core.Chunk([b""], [(5, 50)]))
    spool.commit()
    assert checkpoints == [1]
    assert list(read_journal(spool.journal_path)) == []
    spool.close()
