from pathlib import Path

import pytest

from hub.infomodel import InfoModel

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    return SCHEMAS


@pytest.fixture(scope="session")
def model() -> InfoModel:
    return InfoModel(SCHEMAS)
