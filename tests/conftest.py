"""Shared test set-up: paths to the reference material in ../shared/reference."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> pathlib.Path:
  if not REFERENCE.is_dir():
    pytest.fail(f"reference material not found at {REFERENCE}")
  return REFERENCE
