"""benchmarks/careless_users.py: the injected users are what they say, and its AUC is right.

The injection is checked on the MT-Bench file when it is there (the benchmark's
own input), otherwise on a small log of the same columns.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.test_data import random_raw

ROOT = Path(__file__).resolve().parents[1]
MTBENCH = Path("/work/shared/data/mtbench_human_judgments.csv")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "careless_users", ROOT / "benchmarks" / "careless_users.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real():
    if MTBENCH.is_file():
        return pd.read_csv(MTBENCH)
    votes = random_raw(0, n_rows=1500, n_users=30, uniform=True).drop(columns="extra")
    rng = np.random.default_rng(0)
    return votes.rename(columns={"user": "user_id"}).assign(
        question_id=rng.integers(81, 161, len(votes)), turn=rng.integers(1, 3, len(votes))
    )


def _check_common(bench, real, out, n_users):
    assert list(out.columns) == [*real.columns, "kind"]
    per_user = out.groupby("user_id", sort=False)
    assert per_user.ngroups == n_users
    assert not set(out["user_id"]) & set(real["user_id"])
    # Vote counts come from the real users' counts (ties included).
    assert set(per_user.size()) <= set(real.groupby("user_id").size())
    # Every item is one the real log showed, in the order it showed it ...
    shown = set(map(tuple, real[list(bench.ITEM)].itertuples(index=False)))
    assert set(map(tuple, out[list(bench.ITEM)].itertuples(index=False))) <= shown
    # ... and no user sees an item twice.
    assert not out.duplicated(["user_id", *bench.ITEM]).any()
    # One kind per user, named in the id.
    kinds = per_user["kind"].agg(["nunique", "first"])
    assert (kinds["nunique"] == 1).all()
    assert all(u.startswith(f"careless-{k}-") for u, k in kinds["first"].items())


@pytest.mark.parametrize("case", ["coin", "tie", "left"])
def test_injected_users_of_each_kind(bench, real, case):
    out = bench.inject(real, case, 40, np.random.default_rng(1))
    _check_common(bench, real, out, 40)
    assert set(out["kind"]) == {case}
    w = out["winner"]
    n = len(w)
    if case == "left":
        assert (w == "model_a").all()
    elif case == "coin":
        assert set(w) == {"model_a", "model_b"}
        # Binomial(n, 1/2) share of model_a: within 4 standard deviations.
        assert abs((w == "model_a").mean() - 0.5) < 4 * np.sqrt(0.25 / n)
    else:
        share = bench.TIE_SHARE
        assert abs((w == "tie").mean() - share) < 4 * np.sqrt(share * (1 - share) / n)
        rest = w[w != "tie"]
        assert abs((rest == "model_a").mean() - 0.5) < 4 * np.sqrt(0.25 / len(rest))


def test_mix_takes_the_kinds_in_turn(bench, real):
    out = bench.inject(real, "mix", 16, np.random.default_rng(2))
    _check_common(bench, real, out, 16)
    per_kind = out.groupby("kind")["user_id"].nunique()
    assert sorted(per_kind.index) == sorted(bench.KINDS)
    assert sorted(per_kind) == [5, 5, 6]


def test_unknown_case_is_refused(bench, real):
    with pytest.raises(ValueError, match="unknown case 'sloppy'"):
        bench.inject(real, "sloppy", 3, np.random.default_rng(0))


def test_auc_matches_mann_whitney(bench):
    rng = np.random.default_rng(5)
    # Integer scores make many ties, within and between the groups.
    pos = rng.integers(0, 6, 37).astype(float)
    neg = rng.integers(0, 4, 11).astype(float)
    u = stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    assert bench.auc(pos, neg) == pytest.approx(u / (pos.size * neg.size), rel=1e-12)
    # Unscored users (-inf) rank below every scored one and tie among themselves.
    pos_inf, neg_inf = pos.copy(), neg.copy()
    pos_inf[:2] = neg_inf[:3] = -np.inf
    lowest = min(pos.min(), neg.min()) - 1.0
    u = stats.mannwhitneyu(
        np.where(np.isinf(pos_inf), lowest, pos_inf),
        np.where(np.isinf(neg_inf), lowest, neg_inf),
        alternative="two-sided",
    ).statistic
    assert bench.auc(pos_inf, neg_inf) == pytest.approx(u / (pos.size * neg.size), rel=1e-12)
    # A toy case by hand: pos {3, 1}, neg {2, 1}: pairs (3>2) 1, (3>1) 1, (1<2) 0, (1=1) 1/2.
    assert bench.auc(np.array([3.0, 1.0]), np.array([2.0, 1.0])) == pytest.approx(2.5 / 4)
    with pytest.raises(ValueError, match="NaN"):
        bench.auc(np.array([np.nan]), np.array([1.0]))


def test_top_k_and_precision_recall(bench):
    score = np.array([0.9, 0.1, 0.5, 0.5, 0.5, -np.inf])
    is_real = np.array([True, False, True, False, True, True])
    for seed in range(5):
        keep = bench.top_k(score, 3, np.random.default_rng(seed))
        # 0.9 always; two of the three users at 0.5.
        assert keep.sum() == 3 and keep[0] and keep[2:5].sum() == 2
    keep = np.array([True, False, True, True, False, False])
    assert bench.precision_recall(keep, is_real) == (2 / 3, 2 / 4)


def test_run_one_scores_every_user_and_keeps_as_many(bench, real):
    # Two variants, the second first: the one named first sets the baselines' count.
    variants = list(bench.VARIANTS)[1::-1]
    rows = pd.DataFrame(bench.run_one(real, "mix", 0, n_inject=8, variants=variants))
    names = [f"{v}: {s}" for v in variants for s in ("eta_mean", "p_above")]
    assert list(rows["scorer"]) == [
        *names,
        "agreement score",
        "agreement score (in-sample)",
        "tie rate",
    ]
    assert rows["auc"].between(0, 1).all()
    # The baselines keep as many users as the first variant's filter.
    first = rows.loc[rows["scorer"] == names[0], "n_kept"].item()
    assert (rows.loc[~rows["scorer"].str.startswith("attnmodel"), "n_kept"] == first).all()
    # Precision and recall count whole users: 8 injected, the rest real.
    n_real = real["user_id"].nunique()
    hits = rows["recall"] * n_real
    np.testing.assert_allclose(hits, np.round(hits), atol=1e-9)
    np.testing.assert_allclose(rows["precision"] * rows["n_kept"], hits, atol=1e-9)


def test_every_variant_fits_a_tiny_injected_log(bench):
    """Each VARIANTS entry runs as written: its data and fit options reach the result."""
    from attnmodel.data.votes import VoteData
    from attnmodel.inference.fitting import fit

    rng = np.random.default_rng(3)
    votes = random_raw(4, n_rows=300, n_users=12, uniform=True).drop(columns="extra")
    real = votes.rename(columns={"user": "user_id"}).assign(
        question_id=rng.integers(81, 161, len(votes)), turn=rng.integers(1, 3, len(votes))
    )
    log = pd.concat([real, bench.inject(real, "mix", 3, rng).drop(columns="kind")])
    for name, spec in bench.VARIANTS.items():
        spec = dict(spec)
        data_kw = spec.pop("data", {})
        data = VoteData.from_frame(log, user="user_id", **data_kw)
        # One start and few iterations: this checks that the options reach the fit, not
        # the fit itself (tests/test_em.py and the benchmark do that).
        tree = fit(data, method="em", seed=0, **{**spec, "n_init": 1, "max_iter": 30})
        attn = tree["attentiveness"].to_dataset()
        assert attn.sizes["user"] == data.n_users, name
        assert set(attn["user"].to_numpy()) <= set(log["user_id"]), name
        assert np.all((attn["eta_mean"] >= 0) & (attn["eta_mean"] <= 1)), name
        assert tree.attrs["family"] == spec["family"], name
        settings = json.loads(tree.attrs["settings"])
        assert settings["ties"] == data_kw.get("ties", "drop"), name
        if "mu_structure" in spec:
            assert json.loads(tree.attrs["mu_structure"])["name"] == spec["mu_structure"], name
