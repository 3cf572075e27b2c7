"""The README's embedding example runs as written: the public API in ``engine/__init__.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("### Embedding the engine in Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_embedding_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NODEFORGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(ROOT)
    exec(compile(readme_example(), "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "succeeded Hello, Ada! See you soon.", "Hello, Grace! See you soon.", "Hello, Lin! See you soon."]


def test_public_names_load_on_first_use() -> None:
    import nodeforge.engine as nf

    assert nf.Session.__module__ == "nodeforge.engine.session"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = nf.nothing
