"""EM against NUTS: the agreement tables and the comparison figure.

The NUTS side is a NUTS-shaped tree built from exact computations
(``tests/nuts_trees.py``): global parameters jittered around the EM estimate
and exact ``eta`` draws at it, so every expected agreement is known.
"""

from __future__ import annotations

import io
import warnings

import arviz_plots as azp
import arviz_stats as azs
import matplotlib
import numpy as np
import pytest
import xarray as xr

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from attnmodel import fit_em, simulate_votes  # noqa: E402
from attnmodel.compare import arviz_pair, compare_fits, plot_comparison  # noqa: E402
from attnmodel.filtering import filter_users  # noqa: E402
from attnmodel.results.em import em_to_datatree  # noqa: E402
from tests.nuts_trees import nuts_like  # noqa: E402

PAIRS = {"gpt vs llama": 0.8, "claude vs alpaca": 0.7}


@pytest.fixture(scope="module")
def em_fit():
    sim = simulate_votes("beta", {"alpha": 1.5, "beta": 1.5}, 60, (20, 120), PAIRS, seed=7)
    res = fit_em(sim.to_data(), "beta", mu={"gpt vs llama": 0.8}, n_init=1)
    assert res.converged_
    return res


@pytest.fixture(scope="module")
def em(em_fit):
    return em_to_datatree(em_fit, n_draws=50)


@pytest.fixture(scope="module")
def nuts(em_fit, em):
    return nuts_like(em_fit, em, chains=4, draws=250, jitter=0.1, seed=2)


def test_parameters_table(em_fit, em, nuts):
    c = compare_fits(em, nuts)
    pairs = list(em_fit.mu_.index)
    assert list(c.params.index) == ["alpha", "beta"] + [f"mu[{p}]" for p in pairs]
    assert c.params.loc["alpha", "em"] == em_fit.params_["alpha"]
    assert c.params.loc[f"mu[{pairs[1]}]", "em"] == em_fit.mu_.iloc[1]
    post = nuts["posterior"]
    assert c.params.loc["beta", "nuts_mean"] == pytest.approx(float(post["beta"].mean()), rel=1e-14)
    hdi = azs.hdi(post["alpha"], prob=0.94)
    assert c.params.loc["alpha", "nuts_hdi_lower"] == float(hdi.sel(ci_bound="lower"))
    assert c.params.loc["alpha", "nuts_hdi_upper"] == float(hdi.sel(ci_bound="upper"))
    # Draws jittered around the EM estimate contain it; a known mu is a point.
    assert c.params["inside"].all() and c.agreement["params_inside"] == 1.0
    known = c.params.loc["mu[gpt vs llama]"]
    assert known["nuts_hdi_lower"] == known["nuts_hdi_upper"] == known["em"] == 0.8
    # Moved 1.0 away (the interval is ~0.6 wide), alpha's estimate falls outside.
    moved = nuts.copy()
    moved["posterior"] = nuts["posterior"].to_dataset().assign(alpha=post["alpha"] + 1.0)
    c2 = compare_fits(em, moved)
    assert not c2.params.loc["alpha", "inside"] and c2.params.loc["beta", "inside"]
    assert c2.agreement["params_inside"] == 3 / 4


def test_users_table_and_agreement(em_fit, em, nuts):
    c = compare_fits(em, nuts, data=em_fit.data)
    u = c.users
    assert list(u.index) == list(em_fit.data.users)
    exact = em["attentiveness"]["p_above"].to_numpy()
    np.testing.assert_array_equal(u["p_above_em"], exact)
    np.testing.assert_array_equal(u["abs_diff"], np.abs(u["p_above_em"] - u["p_above_nuts"]))
    # NUTS p_above here are means of 1000 exact draws: within 4.5 binomial SE of the
    # exact values (60 users; floor for p ~ 0 or 1).
    se = np.sqrt(exact * (1 - exact) / 1000)
    assert np.all(u["abs_diff"] <= 4.5 * se + 1e-9)
    a = c.agreement
    assert a["frac_within_tol"] == np.mean(u["abs_diff"] <= 0.05)
    assert a["max_abs_diff"] == u["abs_diff"].max()
    assert a["user_max_diff"] == u["abs_diff"].idxmax()
    np.testing.assert_array_equal(u["n_votes"], em_fit.data.votes_per_user().to_numpy())
    assert (a["prob"], a["tol"], a["hdi_prob"], a["eta_star"]) == (0.95, 0.05, 0.94, 0.5)
    assert "of 60 users differ by at most 0.05" in c.summary()


def test_decisions_that_differ_are_counted(em_fit, em, nuts):
    users = list(em_fit.data.users)
    p_em = em["attentiveness"]["p_above"].to_numpy()
    p = p_em.copy()
    mcse = np.zeros(p.size)
    low = np.flatnonzero(p_em < 0.5)[:2]  # dropped by EM, kept by NUTS
    high = np.flatnonzero(p_em >= 0.95)[:2]  # kept by EM: one dropped, one undetermined
    p[low] = 0.99
    p[high[0]] = 0.5
    p[high[1]], mcse[high[1]] = 0.95, 0.01
    tree = nuts.copy()
    tree["attentiveness"] = (
        nuts["attentiveness"].to_dataset().assign(p_above=("user", p), p_above_mcse=("user", mcse))
    )
    # The prob rule alone (the evidence screen is tested below).
    c = compare_fits(em, tree, data=em_fit.data, min_evidence=0)
    d = c.users
    assert list(d.loc[[users[i] for i in low], "decision_nuts"]) == ["kept", "kept"]
    assert d.loc[users[high[0]], "decision_nuts"] == "dropped"
    assert d.loc[users[high[1]], "decision_nuts"] == "undetermined"
    assert d.loc[users[high[1]], "decision_em"] == "kept"
    changed = [*low, *high]
    assert c.agreement["n_decisions_differ"] == 4
    assert c.agreement["frac_decisions_agree"] == pytest.approx(1 - 4 / 60, rel=1e-15)
    votes = em_fit.data.votes_per_user().to_numpy()
    assert c.agreement["votes_decisions_differ"] == int(votes[changed].sum())
    # A stricter cut moves decisions for users between the two cuts only.
    c99 = compare_fits(em, tree, prob=0.99, min_evidence=0)
    assert set(c99.users.index[c99.users["decision_em"] == "kept"]) == {
        users[i] for i in np.flatnonzero(p_em >= 0.99)
    }


def test_compare_applies_the_filters_evidence_screen(em_fit, em, nuts):
    """Decisions are the filter's: a decision must rest on the user's own log Bayes factor."""
    users = list(em_fit.data.users)
    attn = nuts["attentiveness"].to_dataset()
    p = np.full(len(users), 0.99)
    mcse = np.zeros(len(users))
    log_bf = np.full(len(users), 5.0)
    p[:3] = 0.2
    log_bf[:3] = -5.0  # dropped, on evidence
    log_bf[3] = 0.5  # kept by the rule, but too little evidence at min_evidence 1
    p[4], log_bf[4] = 0.2, -0.5  # dropped by the rule, too little evidence to drop
    tree = nuts.copy()
    tree["attentiveness"] = attn.assign(
        p_above=("user", p), p_above_mcse=("user", mcse), log_bf=("user", log_bf)
    )
    c = compare_fits(em, tree, data=em_fit.data)
    d = c.users["decision_nuts"]
    assert list(d.iloc[:5]) == ["dropped"] * 3 + ["too little evidence"] * 2
    assert (d.iloc[5:] == "kept").all()
    assert c.agreement["min_evidence"] == 1.0
    # The same decisions as the filter with its defaults, user by user.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the simulated draws need not pass the gate
        out = filter_users(tree, em_fit.data, rule="prob", force=True)
    assert (d == "kept").sum() == out.counts["users_kept"]
    assert (d == "too little evidence").sum() == out.counts["users_little_evidence"]
    assert set(c.users.index[d == "kept"]) == set(out.kept_users)
    # Off, the rule alone decides.
    off = compare_fits(em, tree, data=em_fit.data, min_evidence=0)
    assert list(off.users["decision_nuts"].iloc[3:5]) == ["kept", "dropped"]
    assert off.agreement["min_evidence"] == 0.0


def test_inputs_are_checked(em_fit, em, nuts):
    # Users in another order are aligned; other users are an error.
    shuffled = nuts.copy()
    perm = np.random.default_rng(0).permutation(60)
    shuffled["attentiveness"] = nuts["attentiveness"].isel(user=perm)
    a, b = compare_fits(em, nuts), compare_fits(em, shuffled)
    assert a.users.equals(b.users)
    renamed = nuts.copy()
    renamed["attentiveness"] = (
        nuts["attentiveness"].to_dataset().assign_coords(user=[f"x{i}" for i in range(60)])
    )
    with pytest.raises(ValueError, match="users"):
        compare_fits(em, renamed)
    other_cut = nuts.copy()
    other_cut.attrs["eta_star"] = 0.6
    with pytest.raises(ValueError, match="eta_star"):
        compare_fits(em, other_cut)
    other_family = nuts.copy()
    other_family.attrs["family"] = "two_point"
    with pytest.raises(ValueError, match="two_point"):
        compare_fits(em, other_family)
    with pytest.raises(ValueError, match="not an attnmodel result"):
        compare_fits(em, nuts["posterior"].copy())


def test_plot_comparison(em, nuts):
    fig = plot_comparison(em, nuts, prob=0.9)
    try:
        scatter = [ax for ax in fig.axes if ax.get_gid() == "p_above_scatter"]
        assert len(scatter) == 1
        ax = scatter[0]
        points = ax.collections[0].get_offsets()
        np.testing.assert_array_equal(points[:, 0], em["attentiveness"]["p_above"].to_numpy())
        np.testing.assert_array_equal(points[:, 1], nuts["attentiveness"]["p_above"].to_numpy())
        xs = {tuple(line.get_xdata()) for line in ax.lines}
        assert (0, 1) in xs and (0.9, 0.9) in xs  # y = x and the cut
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.tell() > 10_000
    finally:
        plt.close(fig)


def test_plot_comparison_gives_each_variable_its_own_scale(em, nuts):
    params = compare_fits(em, nuts).params
    fig = plot_comparison(em, nuts)
    try:
        forest = {ax.get_gid(): ax for ax in fig.axes if str(ax.get_gid()).startswith("forest:")}
        assert list(forest) == ["forest:alpha", "forest:beta", "forest:mu"]
        assert len(fig.axes) == 4
        for name, ax in forest.items():
            rows = [r for r in params.index if r == name[7:] or r.startswith(f"{name[7:]}[")]
            # Both models' points, one per element: NUTS means, then EM estimates.
            nuts_pts, em_pts = (c.get_offsets()[:, 0] for c in ax.collections[-2:])
            np.testing.assert_array_equal(nuts_pts, params.loc[rows, "nuts_mean"])
            np.testing.assert_array_equal(em_pts, params.loc[rows, "em"])
            # The x range fits this variable's own intervals (matplotlib's 5% margins),
            # so mu (~0.75) is not squashed beside alpha (~1.9).
            lo = params.loc[rows, ["em", "nuts_hdi_lower"]].min().min()
            hi = params.loc[rows, ["em", "nuts_hdi_upper"]].max().max()
            x0, x1 = ax.get_xlim()
            assert x0 <= lo and hi <= x1 and x1 - x0 <= 1.15 * (hi - lo)
        assert (
            not forest["forest:mu"]
            .get_shared_x_axes()
            .joined(forest["forest:mu"], forest["forest:alpha"])
        )
        assert [t.get_text() for t in forest["forest:mu"].get_yticklabels()] == [
            "gpt vs llama",
            "claude vs alpaca",
        ]
    finally:
        plt.close(fig)
    fig = plot_comparison(em, nuts, var_names=["mu"])
    try:
        assert [ax.get_gid() for ax in fig.axes] == ["forest:mu", "p_above_scatter"]
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="'eta'"):
        plot_comparison(em, nuts, var_names=["eta"])


def test_arviz_pair_repeats_the_em_estimate_over_the_nuts_draws(em_fit, em, nuts):
    pair = arviz_pair(em, nuts)
    assert list(pair) == ["EM", "NUTS"]
    em_post, nuts_post = (pair[k]["posterior"].to_dataset() for k in ("EM", "NUTS"))
    assert list(em_post.data_vars) == list(nuts_post.data_vars) == ["alpha", "beta", "mu"]
    full = nuts["posterior"].to_dataset()
    for name in ["alpha", "beta", "mu"]:
        assert em_post[name].dims == nuts_post[name].dims == full[name].dims
        xr.testing.assert_identical(nuts_post[name], full[name])
    # The EM tree has 1 chain of 50 draws; the pair has NUTS's 4 chains of 250.
    assert dict(em_post.sizes) == dict(nuts_post.sizes) == {"chain": 4, "draw": 250, "pair": 2}
    for dim in ["chain", "draw", "pair"]:
        np.testing.assert_array_equal(em_post[dim], nuts_post[dim])
        assert em_post[dim].dtype == nuts_post[dim].dtype
    np.testing.assert_array_equal(em_post["alpha"], np.full((4, 250), em_fit.params_["alpha"]))
    np.testing.assert_array_equal(em_post["beta"], np.full((4, 250), em_fit.params_["beta"]))
    mu = em_fit.mu_.reindex(nuts_post["pair"].to_numpy()).to_numpy()
    np.testing.assert_array_equal(em_post["mu"], np.broadcast_to(mu, (4, 250, 2)))
    # Arrays of their own (not read-only broadcast views): editing them leaves EM's alone.
    em_post["alpha"][0, 0] = -1.0
    assert float(em["posterior"]["alpha"][0, 0]) == em_fit.params_["alpha"]
    only_mu = arviz_pair(em, nuts, var_names=["mu"])
    assert [list(t["posterior"].data_vars) for t in only_mu.values()] == [["mu"], ["mu"]]


# The known mu is one value in every draw: nothing to smooth, and arviz_stats says so.
@pytest.mark.filterwarnings("ignore:Your data appears to have a single value:UserWarning")
def test_arviz_pair_goes_to_arviz_plots_as_it_is(em, nuts):
    pair = arviz_pair(em, nuts)
    pc = azp.plot_forest(pair, var_names=["mu"], combined=True, backend="matplotlib")
    try:
        assert isinstance(pc, azp.PlotCollection)
        assert list(pc.data["model"].to_numpy()) == ["EM", "NUTS"]
        # Stacked along "model" without NaN padding: EM keeps every draw.
        assert not pc.data["mu"].isnull().any()
    finally:
        plt.close("all")
    # The NUTS posterior with the EM estimates as reference lines, one per pair.
    pc = azp.plot_dist(pair["NUTS"], backend="matplotlib")
    try:
        estimate = pair["EM"]["posterior"].to_dataset().isel(chain=0, draw=0, drop=True)
        assert isinstance(azp.add_lines(pc, estimate), azp.PlotCollection)
        lines = pc.viz["ref_line"]
        for p in estimate["pair"].to_numpy():
            line = lines["mu"].sel(pair=p).item()
            assert set(line.get_xdata()) == {float(estimate["mu"].sel(pair=p))}
        assert set(lines["alpha"].item().get_xdata()) == {float(estimate["alpha"])}
    finally:
        plt.close("all")


def test_arviz_pair_checks_its_inputs(em, nuts):
    with pytest.raises(ValueError, match="'eta' is not a global parameter of both fits"):
        arviz_pair(em, nuts, var_names=["alpha", "eta"])
    with pytest.raises(ValueError, match="'sigma' is not a global parameter"):
        arviz_pair(em, nuts, var_names=["sigma"])
    other_family = nuts.copy()
    other_family.attrs["family"] = "two_point"
    with pytest.raises(ValueError, match="two_point"):
        arviz_pair(em, other_family)
    with pytest.raises(ValueError, match="must be an EM fit.*'nuts'"):
        arviz_pair(nuts, em)
    other_pairs = nuts.copy()
    other_pairs["posterior"] = (
        nuts["posterior"].to_dataset().assign_coords(pair=["gpt vs llama", "gpt vs alpaca"])
    )
    with pytest.raises(ValueError, match="'mu' has other coordinates"):
        arviz_pair(em, other_pairs)
    assert list(arviz_pair(em, other_pairs, var_names=["alpha"])["NUTS"]["posterior"]) == ["alpha"]
    with pytest.raises(ValueError, match="not an attnmodel result"):
        arviz_pair(em, nuts["posterior"].copy())


def test_swapped_fits_are_refused(em, nuts):
    # compare_fits(nuts, em) would otherwise read NUTS's first draw as the EM estimate.
    with pytest.raises(ValueError, match="first fit must be an EM fit.*'nuts'"):
        compare_fits(nuts, em)
    with pytest.raises(ValueError, match="second fit must be a NUTS fit.*'em'"):
        compare_fits(em, em)
    with pytest.raises(ValueError, match="first fit must be an EM fit"):
        plot_comparison(nuts, em)


# ---------------------------------------------------------------------------
# A real (tiny) NUTS run through fit(method="nuts")
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_pair():
    """EM and a real NUTS run on one pair with known mu (the quickest model to sample)."""
    from attnmodel.inference.fitting import fit

    sim = simulate_votes("beta", {"alpha": 1.5, "beta": 1.5}, 40, (20, 120), 0.8, seed=8)
    data = sim.to_data()
    em = fit(data, "beta", mu=0.8, n_init=1, n_draws=50)
    nuts = fit(
        data,
        "beta",
        method="nuts",
        mu=0.8,
        draws=150,
        tune=150,
        chains=2,
        cores=1,
        progressbar=False,
        seed=3,
    )
    return data, em, nuts


def test_real_nuts_tree_through_compare_filter_and_files(real_pair, tmp_path):
    from attnmodel.filtering import DiagnosticsError, filter_users
    from attnmodel.results.io import load, save
    from attnmodel.results.summary import diagnostic_checks, summarize

    data, em, real_nuts = real_pair
    assert real_nuts.attrs["method"] == "nuts" and real_nuts.attrs["chains"] == 2
    assert {"posterior", "attentiveness", "sample_stats"} <= set(real_nuts.children)
    s = summarize(real_nuts)
    checks = diagnostic_checks(real_nuts)
    assert s["diagnostics"]["max_rhat"] == checks.loc["r_hat", "value"]
    assert s["diagnostics"]["divergences"] == int(real_nuts["sample_stats"]["diverging"].sum())
    assert s["converged"] == bool(checks["passed"].all())
    # The gate follows the checks: it filters a fit that passes them and refuses one that fails.
    if checks["passed"].all():
        out = filter_users(real_nuts, data, rule="prob")
        assert out.diagnostics["passed"].all()
    else:
        with pytest.raises(DiagnosticsError):
            filter_users(real_nuts, data, rule="prob")
    loose = filter_users(
        real_nuts, data, rule="prob", rhat_max=10.0, ess_min=1, max_divergences=10**6
    )
    c = compare_fits(em, real_nuts, data=data)
    np.testing.assert_array_equal(
        c.users["p_above_nuts"], real_nuts["attentiveness"]["p_above"].to_numpy()
    )
    assert (c.users["decision_nuts"] == "kept").sum() == loose.counts["users_kept"]
    assert (c.users["decision_nuts"] == "undetermined").sum() == loose.counts["users_undetermined"]
    assert (c.users["decision_nuts"] == "too little evidence").sum() == loose.counts[
        "users_little_evidence"
    ]
    assert list(c.params.index) == ["alpha", "beta", "mu[A vs B]"]
    back = load(save(real_nuts, tmp_path / "nuts.nc"))
    assert summarize(back) == s
    plt.close(plot_comparison(em, real_nuts))
