"""The README's "Evaluate your own data" walkthrough runs as printed, on a fresh folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough() -> str:
    text = README.read_text()
    match = re.search(r"<!-- walkthrough:[^\n]*-->\n```bash\n(.*?)```\n<!-- /walkthrough -->", text, re.S)
    assert match, "README.md lost its walkthrough block"
    return match.group(1)


@pytest.mark.slow
def test_the_walkthrough_runs_as_printed(tmp_path: Path, embedding_cache: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CHUNKEVAL_PROGRESS": "0",
           "CHUNKEVAL_CACHE_DIR": str(embedding_cache.parent / "walkthrough-cache"),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    # The questions of the three corpora the folder lacks were skipped, each with its reason.
    skipped = [json.loads(line) for line in (tmp_path / "my-results" / "skipped.jsonl").read_text().splitlines()]
    kept = pq.read_table(tmp_path / "my-results" / "results.parquet")
    assert set(kept.column("corpus_id").to_pylist()) == {"chatlogs", "pubmed"}
    assert len(skipped) + kept.num_rows // 3 == 472 and skipped
    assert all(row["reason"] for row in skipped)
    assert "skipped" in done.stderr and "invalid question row(s)" in done.stderr
    html = (tmp_path / "my-report" / "report.html").read_text()
    assert "recursive 400 tokens, overlap 50" in html and "fixed 200 tokens, overlap 0" in html
    assert (tmp_path / "my-report" / "explorer.html").is_file()
