"""The decision log is byte-identical to the one written before the hot-path optimizations
(same seeds, contexts, ids and clock): same candidates, probabilities, actions,
propensities, explanations and learned state."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_log import GOLDEN, write_log


def test_log_lines_match_the_golden_log(tmp_path: Path) -> None:
    out = tmp_path / "log.jsonl"
    write_log(out)
    new = out.read_text(encoding="utf-8").splitlines()
    old = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert len(new) == len(old) == 3 * 121 + 120
    for no, (a, b) in enumerate(zip(new, old, strict=True), start=1):
        assert a == b, f"line {no} differs:\n new {a}\n old {b}"
