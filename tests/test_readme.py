"""README's Python example runs as written (shortened: one epoch on 1 000 images)."""

import re

import pytest

from conftest import ROOT, SHARED_DATA


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "fashion-mnist").is_dir(), reason="no Fashion-MNIST here")
def test_readme_python_example(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(code.strip().splitlines()) <= 10
    for old in ('"fashion/', '{"epochs": 20}', ".fit(images)"):
        assert old in code, old
    code = (code.replace('"fashion/', f'"{SHARED_DATA}/fashion-mnist/')
            .replace('{"epochs": 20}', '{"epochs": 1}').replace(".fit(images)", ".fit(images[:1000])"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["samples"].shape == (16, 1, 28, 28)
    assert namespace["codes"].shape == (1000, 8) and namespace["again"].shape == (16, 1, 28, 28)
    assert (tmp_path / "runs" / "fashion" / "config.toml").is_file()
