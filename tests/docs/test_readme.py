"""The README's stage-by-stage quick start runs as written (servers aside)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LONG_RUNNING = ("chatpersona serve", "chatpersona worker", "chatpersona replay")


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start, stage by stage\s+```bash\n(.*?)```", text, re.S)
    assert block, "the README lost its quick start block"
    joined = block.group(1).replace("\\\n", " ")
    cmds = []
    for line in joined.splitlines():
        line = line.split("  #", 1)[0].strip()
        if not line.startswith("chatpersona ") or line.startswith(LONG_RUNNING):
            continue
        cmds.append(line)
    return cmds


def test_readme_quick_start_runs(tmp_path: Path) -> None:
    cmds = _commands()
    assert len(cmds) >= 7
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("CHATPERSONA_STORE_URL", None)
    for cmd in cmds:
        cmd = cmd.replace("--users 2000", "--users 400")  # same commands, smaller data
        done = subprocess.run(
            cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (tmp_path / "clean" / "users.parquet").is_file()
    assert (tmp_path / "model" / "model.json").is_file()
    assert (tmp_path / "decisions.jsonl").stat().st_size > 0
