"""Every producer's output on a tiny case matches its stored golden numbers unless its version was bumped."""
import pytest

from ltdd_utils import golden
from ltdd_utils.versions import load_all

PRODUCERS = load_all()


def test_every_producer_has_a_golden_case():
    assert sorted(PRODUCERS) == sorted(golden.CASES), "add a case in ltdd_utils/golden.py for each new producer"


@pytest.fixture(scope="module")
def computed():
    return golden.compute()


@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_producer_output_matches_its_version(name, computed):
    problem = golden.check(name, golden.load(), computed[name], PRODUCERS[name])
    assert problem is None, problem


def test_a_changed_output_without_a_version_bump_is_named():
    stored = {"distill.dm": {"version": 1, "values": [1.0, 2.0]}}
    msg = golden.check("distill.dm", stored, [1.0, 2.5], 1)
    assert "changed but its version did not" in msg and "bump it to 2" in msg
    assert golden.check("distill.dm", stored, [1.0, 2.0 + 1e-9], 1) is None
    assert "golden --update" in golden.check("distill.dm", stored, [1.0, 2.0], 2)
