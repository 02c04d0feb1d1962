"""The Python snippets in the docs run as written: imports included, top to bottom."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgefleet.runtime import ModelRepository

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_runtime_page_has_snippets_to_run() -> None:
    assert len(python_blocks(DOCS / "runtime.md")) >= 4


def test_every_runtime_snippet_runs_in_one_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the snippets write an optimised-graph cache next to them
    namespace: dict[str, object] = {}
    for number, block in enumerate(python_blocks(DOCS / "runtime.md"), start=1):
        try:
            exec(compile(block, f"docs/runtime.md snippet {number}", "exec"), namespace)
        except Exception as exc:  # name the snippet that failed
            pytest.fail(f"docs/runtime.md snippet {number} failed: {exc!r}\n{block}")
    for name in ("model", "outputs", "fleet", "repo"):
        assert name in namespace, f"a snippet no longer defines {name!r}"
    repo = namespace["repo"]
    assert isinstance(repo, ModelRepository)
    repo.close()
