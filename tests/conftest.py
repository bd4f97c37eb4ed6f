import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session", autouse=True)
def _env(tmp_path_factory):
    """Point the library at ../shared/data, a per-session cache, line progress and no downloads."""
    os.environ.setdefault("LTDD_DATA", str(SHARED_DATA))
    os.environ.setdefault("LTDD_CACHE", str(tmp_path_factory.mktemp("cache")))
    os.environ["LTDD_PROGRESS"] = "lines"
    os.environ["LTDD_DOWNLOAD"] = "0"
    os.environ.setdefault("MPLBACKEND", "Agg")


def need(path_in_data: str):
    return pytest.mark.skipif(not (Path(os.environ.get("LTDD_DATA", SHARED_DATA)) / path_in_data).exists()
                              and not (SHARED_DATA / path_in_data).exists(),
                              reason=f"{path_in_data} not in the data root")
