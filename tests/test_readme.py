"""README's Python example runs as written (shortened to one epoch)."""

import re

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_readme_python_example(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert "train.epochs=50" in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("train.epochs=50", "train.epochs=1"), "README.md", "exec"), namespace)
    assert namespace["meta"]["epoch"] == 1
    assert (tmp_path / "runs" / "digits" / "samples" / "progress.png").is_file()
