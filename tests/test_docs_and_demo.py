"""The user-facing entry points work: the demo, the ./dev script, .ci/run and the docs."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The same warning policy as pyproject.toml's filterwarnings, for the demo subprocess.
WARNING_FLAGS = ["-W", "error", "-W", "ignore:numpy.ndarray size changed:RuntimeWarning"]


@pytest.mark.slow
def test_demo_runs_and_reports_identical_values(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    demo = repo_root / "examples" / "demo.py"
    proc = subprocess.run(
        [sys.executable, *WARNING_FLAGS, str(demo), "--output-dir", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(repo_root)},
    )
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    assert "values identical: yes" in proc.stdout, report
    refs = out / "refs.json"
    assert refs.is_file()
    assert re.search(r"chunk references:\s+[1-9]\d* byte ranges", proc.stdout), report
    assert len(sorted(out.glob("*.nc"))) == 3


def test_readme_names_the_two_setup_commands(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    assert "./dev demo" in readme
    assert "./dev test" in readme


def test_dev_script_offers_the_readme_commands(repo_root: Path) -> None:
    dev = repo_root / "dev"
    assert os.access(dev, os.X_OK), "./dev must be executable"
    proc = subprocess.run(
        ["bash", str(dev), "help"], capture_output=True, text=True, check=True, timeout=60
    )
    for command in ("demo", "test", "lint", "typecheck", "docs", "bench"):
        assert re.search(rf"^\s+{command}\b", proc.stdout, re.MULTILINE), command


def test_dev_script_rejects_unknown_commands(repo_root: Path) -> None:
    proc = subprocess.run(
        ["bash", str(repo_root / "dev"), "no-such-command"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "unknown command" in proc.stderr


@pytest.mark.parametrize("script", ["dev", ".ci/run"])
def test_shell_scripts_parse(repo_root: Path, script: str) -> None:
    subprocess.run(["bash", "-n", str(repo_root / script)], check=True, timeout=60)


def _documented_names(api_md: str) -> list[str]:
    pattern = r"^\s*\.\. auto(?:function|class|module|exception|data)::\s+(\S+)"
    return re.findall(pattern, api_md, re.MULTILINE)


def test_api_page_documents_importable_names(repo_root: Path) -> None:
    api_md = (repo_root / "docs" / "api.md").read_text()
    # MyST would show autodoc's reStructuredText output as plain text: use {eval-rst}.
    assert "```{auto" not in api_md, "wrap autodoc directives in {eval-rst} blocks"
    names = _documented_names(api_md)
    assert names, "docs/api.md documents nothing"
    for dotted in names:
        module_name, _, attr = dotted.rpartition(".")
        try:
            module = importlib.import_module(dotted)
        except ImportError:
            module = importlib.import_module(module_name)
            assert hasattr(module, attr), f"docs/api.md names {dotted}, which does not exist"


def test_docs_toctree_lists_every_page(repo_root: Path) -> None:
    docs = repo_root / "docs"
    index = (docs / "index.md").read_text()
    for page in sorted(docs.glob("*.md")):
        if page.name != "index.md":
            assert page.stem in index, f"{page.name} is missing from the toctree in index.md"
