"""Discovery's uncertainty: inclusion probabilities and 95 % intervals from the same bootstrap replicates."""

import numpy as np
import pytest
from test_discovery import Exact, exact_fit

import udesci as ud
from udesci.discovery.uncertainty import Ensemble, choose_per_replicate
from udesci.pipelines.lotka_volterra import BETA, GAMMA

# small shortlists and one sweep: the uncertainty stage is the same, discovery takes a few seconds
FAST = ud.Selection(shortlist=12, rescore=12, sweeps=1)
# (noise, seed, bias of V's 'network'): LV data, exact networks except for a spurious constant in the last
PROBLEMS = {"clean": (0.005, 0, 0.0), "noisy": (0.05, 1, 0.0), "spurious": (0.02, 2, 0.05)}
_CACHE = {}


def _found(key):
    if key not in _CACHE:
        noise, seed, bias = PROBLEMS[key]
        fitted, _ = exact_fit(noise=noise, seed=seed, v_net=Exact(GAMMA, bias=bias))
        _CACHE[key] = ud.discover(fitted, seed=seed, progress=False, selection=FAST)
    return _CACHE[key]


def _excludes_zero(interval):
    lo, hi = interval
    return lo > 0 or hi < 0


def test_percentile_interval_excludes_zero_exactly_when_nearly_every_replicate_selects_one_sign():
    # 100 replicates of one term: the share selecting it and the interval come from the same column
    for selected in (100, 99, 98, 96, 90, 50):
        coef = np.zeros((100, 1))
        coef[:selected, 0] = np.linspace(0.5, 1.5, selected)
        ens = Ensemble({"U": coef}, {"U": [(0,)] * selected + [()] * (100 - selected)}, 100)
        assert ens.inclusion("U")[0] == selected / 100
        # the 2.5 % quantile lies among the zeros once more than 2.5 % of the replicates drop the term
        assert _excludes_zero(ens.interval("U", 0)) == (selected >= 98)
    # a term kept by every replicate but with either sign: inclusion 1, the interval straddles 0
    coef = np.linspace(-1, 1, 100)[:, None]
    ens = Ensemble({"U": coef}, {"U": [(0,)] * 100}, 100)
    assert ens.inclusion("U")[0] == 1.0 and not _excludes_zero(ens.interval("U", 0))


def test_parsimony_rule_per_replicate():
    score = np.array([[0.0, -3.0, -10.0], [0.0, -5.0, -4.0], [0.0, -7.0, -6.5]])
    # replicate 0: only the 3-term candidate is within 6 of the best; replicate 1: all are, the sparsest
    # wins; replicate 2: the 1-term one is 7 worse, and of the two 2-or-3-term ones the sparser wins
    assert choose_per_replicate(score, np.array([1, 2, 3]), 6.0).tolist() == [2, 0, 1]


def test_a_needed_term_is_included_with_an_interval_around_its_coefficient():
    found = _found("clean")
    for name, truth in (("U", -BETA), ("V", GAMMA)):
        det = found.details[name]
        assert det.replicates >= 50  # valid replicates of the 100
        assert det.inclusion["x*y"] >= 0.95, found.summary()
        lo, hi = det.intervals["x*y"]
        assert _excludes_zero((lo, hi))
        # 0.5 % noise: the interval holds the true coefficient to within 0.02 (2 % of it)
        assert lo - 0.02 < truth < hi + 0.02, (name, lo, hi)
        assert "bootstrap replicates" in det.inclusion_basis and "same" in det.interval_basis


def test_a_spurious_term_has_a_low_inclusion_and_an_interval_covering_zero():
    # V's network carries a constant 0.05 the data contradict
    det = _found("spurious").details["V"]
    assert det.inclusion["1"] <= 0.2, det.inclusion
    # a term no replicate selects has every replicate's coefficient at 0 (not listed among the intervals)
    lo, hi = det.intervals.get("1", (0.0, 0.0))
    assert lo <= 0 <= hi


@pytest.mark.parametrize("key", ["clean", "noisy", "spurious"])
def test_inclusion_of_095_or_more_means_an_interval_that_excludes_zero(key):
    found = _found(key)
    checked = 0
    for det in found.details.values():
        assert set(det.intervals) >= {str(t) for t in det.support_terms()}
        for term, p in det.inclusion.items():
            if p >= 0.95:
                assert _excludes_zero(det.intervals[term]), (key, det.name, term, p, det.intervals[term])
                checked += 1
            if term in det.intervals and _excludes_zero(det.intervals[term]):
                assert p > 0.975  # the converse holds by construction
    assert checked >= 1


def test_without_a_bootstrap_or_when_it_is_too_large_the_intervals_are_gauss_newton(monkeypatch):
    import udesci.discovery.uncertainty as unc

    fitted, _ = exact_fit()
    plain = ud.discover(fitted, progress=False, selection=ud.Selection(shortlist=12, rescore=12, sweeps=1, bootstrap=0))
    det = plain.details["U"]
    assert (
        det.replicates == 0 and det.interval_basis.startswith("Gauss–Newton") and "no bootstrap" in det.inclusion_basis
    )
    lo, hi = det.intervals["x*y"]
    assert lo - 0.02 < -BETA < hi + 0.02 and hi - lo < 0.05  # ± 1.96 standard errors at 0.5 % noise
    # a problem too large for the ensemble's Gram matrices: the same Gauss–Newton intervals, and a note says so
    monkeypatch.setattr(unc, "MAX_ENSEMBLE_ENTRIES", 0)
    capped = ud.discover(fitted, progress=False, selection=FAST)
    assert capped.details["U"].interval_basis.startswith("Gauss–Newton") and capped.details["U"].replicates == 0
    assert any("Gauss–Newton" in note for note in capped.notes)
    assert "bootstrap replicates" in capped.details["U"].inclusion_basis  # the selections' replicates remain
