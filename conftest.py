"""Shared pytest configuration for the whole repository.

Sections below are owned by different parts of the project; add fixtures in their own
clearly separated section rather than editing another one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# --------------------------------------------------------------------------------------
# Repository layout (used by tests/test_docs_and_demo.py)
# --------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder (where README.md, ./dev and examples/ live)."""
    return REPO_ROOT
