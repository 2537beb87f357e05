"""NUTS on the marginal and latent models: the result tree, its per-user parts, seeds, samplers.

Fast tests use one small fit (module-scoped); the paper-setting convergence checks
and the comparisons with EM are slow-marked.
"""

import json
import re

import arviz as az
import numpy as np
import pytest

import attnmodel as am
import attnmodel.results.tree as tree_module
from attnmodel.inference.nuts import SAMPLERS, sample_nuts

SMALL = {"draws": 150, "tune": 200, "chains": 2, "progressbar": False, "seed": 4}


@pytest.fixture(scope="module")
def small_data():
    sim = am.simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 40, (20, 40), mu=0.8, seed=9)
    return sim.to_data()


@pytest.fixture(scope="module")
def small_fit(small_data):
    return sample_nuts(small_data, "beta", mu=0.8, **SMALL)


def test_tree_has_the_shared_structure(small_fit, small_data):
    dt = small_fit
    assert set(dt.children) >= {"posterior", "attentiveness", "sample_stats", "log_likelihood"}
    post = dt["posterior"]
    assert set(post.data_vars) == {"alpha", "beta", "mu", "eta"}
    assert post["eta"].dims == ("chain", "draw", "user")
    assert list(post["user"].values) == list(small_data.users)
    np.testing.assert_array_equal(post["mu"].values, 0.8)
    att = dt["attentiveness"]
    for name in ("eta_mean", "eta_sd", "eta_hdi", "p_above", "p_above_mcse", "n_votes"):
        assert name in att
    assert dt.attrs["method"] == "nuts" and dt.attrs["attnmodel_result"] == 1
    assert json.loads(dt.attrs["mu_spec"])["known"] == {"A vs B": 0.8}
    assert dt["log_likelihood"]["votes"].shape == (2, 150, 40)


def test_per_user_summaries_match_the_eta_draws(small_fit):
    """Rao-Blackwellised means and tail masses agree with the raw draws within MC error."""
    eta = small_fit["posterior"]["eta"].values.reshape(-1, 40)
    att = small_fit["attentiveness"]
    n = eta.shape[0]
    # Draws are correlated only through the global parameters; 5 iid standard
    # errors leave room for that and for the 40 users tested at once.
    se = eta.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(eta.mean(axis=0) - att["eta_mean"].values) < 5 * se + 1e-3)
    p_raw = (eta >= 0.5).mean(axis=0)
    p_rb = att["p_above"].values
    se_p = np.sqrt(p_rb * (1 - p_rb) / n)  # binomial standard error at the estimated value
    assert np.all(np.abs(p_raw - p_rb) < 5 * se_p + 1e-3)
    np.testing.assert_allclose(att["eta_sd"].values, eta.std(axis=0), rtol=0.25, atol=0.01)
    assert np.all(att["p_above_mcse"].values >= 0)
    lo, hi = att["eta_hdi"].sel(ci_bound="lower"), att["eta_hdi"].sel(ci_bound="upper")
    assert np.all((lo <= att["eta_mean"]) & (att["eta_mean"] <= hi))


def test_pointwise_loglik_is_each_users_marginal(small_fit, small_data):
    """At any one draw, the users' log-likelihoods sum to EM's objective plus binomial terms."""
    from scipy import stats

    from attnmodel.inference.em import EMProblem, EMState
    from attnmodel.model.priors import resolve_mu

    post = small_fit["posterior"]
    c, d = 1, 17
    params = {"alpha": float(post["alpha"][c, d]), "beta": float(post["beta"][c, d])}
    problem = EMProblem(small_data.counts, am.get_family("beta"), resolve_mu(["A vs B"], 0.8))
    ll = problem.e_step(EMState(params, np.array([0.8]))).log_likelihood
    counts = small_data.counts
    n, s = counts.entry_n, counts.entry_s
    const = counts.row_weight @ counts.row_sum(stats.binom.logpmf(s, n, 0.5) - n * np.log(0.5))
    got = float(small_fit["log_likelihood"]["votes"][c, d].sum())
    assert got == pytest.approx(ll + const, rel=1e-6)


def test_same_seed_same_draws(small_data, small_fit):
    provenance = {"source": "votes.csv", "options": {"user": "judge"}}
    again = sample_nuts(small_data, "beta", mu=0.8, provenance=provenance, **SMALL)
    # The provenance goes to the root attributes (and changes no draw); every root
    # attribute of a NUTS tree is one the schema documents.
    assert again.attrs["data_source"] == "votes.csv"
    assert json.loads(again.attrs["data_options"]) == {"user": "judge"}
    assert "data_source" not in small_fit.attrs
    doc = tree_module.__doc__
    documented = set(re.findall(r"``(\w+)``", doc[: doc.index("``posterior``\n")]))
    assert set(again.attrs) <= documented, set(again.attrs) - documented
    np.testing.assert_array_equal(again["posterior"]["alpha"], small_fit["posterior"]["alpha"])
    np.testing.assert_array_equal(again["posterior"]["eta"], small_fit["posterior"]["eta"])
    np.testing.assert_array_equal(
        again["attentiveness"]["p_above"], small_fit["attentiveness"]["p_above"]
    )


def test_sampler_names_are_validated(small_data):
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample_nuts(small_data, "beta", mu=0.8, sampler="hmc")
    assert SAMPLERS == ("default", "pymc", "nutpie", "numpyro")
    with pytest.raises(ValueError, match="eta_star"):
        sample_nuts(small_data, "beta", mu=0.8, eta_star=1.5)


def test_discrete_family_reports_membership(small_data):
    dt = sample_nuts(small_data, "two_point", mu_prior=(8, 2), **SMALL)
    assert dt.attrs["parameterization"] == "identified"
    att = dt["attentiveness"]
    np.testing.assert_allclose(att["membership"].sum("component"), 1.0, atol=1e-12)
    post = dt["posterior"]
    assert np.all(post["eta_low"] <= post["eta_high"])
    assert set(post.data_vars) == {"q_low", "eta_low", "eta_high", "mu", "eta"}


def test_mode_variance_is_the_inverse_curvature():
    """The mass matrix PyMC's NUTS starts from: diag of (-Hessian)^-1 at the mode."""
    import pymc as pm

    from attnmodel.inference.nuts import _mode_variance

    with pm.Model():
        pm.Normal("x", mu=1.0, sigma=np.array([0.01, 3.0]))
        step = pm.NUTS()
    var = _mode_variance(step, {"x": np.array([1.0, 1.0])})
    # A Gaussian's gradient is linear: central differences are exact up to rounding.
    np.testing.assert_allclose(var, [1e-4, 9.0], rtol=1e-6)


def test_identified_fit_is_reproducible_and_thins_its_summaries(small_data, monkeypatch):
    """Mu under a prior: curvature-started PyMC NUTS, same seed same draws; many rows
    (here: a tiny budget) make the per-row summaries use every k-th draw."""
    import attnmodel.posterior.draws as draws_mod

    monkeypatch.setattr(draws_mod, "SUMMARY_BUDGET", 10 * small_data.counts.n_rows)
    # Few draws: equal seeds must give equal draws from the first one on.
    kw = {**SMALL, "draws": 40, "tune": 50, "store_eta": False, "log_likelihood": False}
    a = sample_nuts(small_data, "beta", mu_prior=(8, 2), **kw)
    b = sample_nuts(small_data, "beta", mu_prior=(8, 2), **kw)
    assert a.attrs["parameterization"] == "identified"
    np.testing.assert_array_equal(a["posterior"]["alpha"], b["posterior"]["alpha"])
    np.testing.assert_array_equal(a["attentiveness"]["p_above"], b["attentiveness"]["p_above"])
    # 2 chains x 40 draws over a budget of 10 draws' worth of rows: every 8th draw.
    assert a["attentiveness"].attrs["summary_thin"] == 8
    assert np.all((a["attentiveness"]["p_above"] >= 0) & (a["attentiveness"]["p_above"] <= 1))
    settings = json.loads(a.attrs["settings"])
    assert set(settings["timings"]) == {"build", "start", "sample", "post"}
    # The default step size target (TARGET_ACCEPT): 40 users are fewer than
    # GAUSSIAN_USERS, so the identified Beta model keeps 0.95.
    assert settings["target_accept"] == 0.95


def test_default_target_accept_follows_the_coordinates(small_data):
    """0.8 only in the identified Beta coordinates on logs of at least
    GAUSSIAN_USERS users; smaller logs, two-point and standard keep 0.95."""
    from attnmodel.inference.nuts import GAUSSIAN_USERS, default_target_accept
    from attnmodel.model.pymc_model import build_model

    kw = {"mu_prior": (8, 2), "likelihood": False}
    many = am.simulate_votes(
        "beta", {"alpha": 3.0, "beta": 5.0}, GAUSSIAN_USERS, 5, mu=0.8, seed=9
    ).to_data()
    fewer = am.simulate_votes(
        "beta", {"alpha": 3.0, "beta": 5.0}, GAUSSIAN_USERS - 1, 5, mu=0.8, seed=9
    ).to_data()
    assert default_target_accept(build_model(many, "beta", **kw)) == 0.8
    assert default_target_accept(build_model(fewer, "beta", **kw)) == 0.95
    assert default_target_accept(build_model(small_data, "beta", **kw)) == 0.95  # 40 users
    # On a log large enough for 0.8, the other coordinates and families keep 0.95.
    two = build_model(many, "two_point", **kw)
    standard = build_model(many, "beta", parameterization="standard", **kw)
    known = build_model(many, "beta", mu=0.8, likelihood=False)
    assert two.parameterization == "identified"
    assert default_target_accept(two) == 0.95
    assert default_target_accept(standard) == 0.95
    assert default_target_accept(known) == 0.95


def test_default_tune_follows_the_start(small_data):
    """500 tuning steps only where PyMC's NUTS starts at the mode of a continuous
    family's identified coordinates with the curvature mass matrix; 1000 elsewhere."""
    from attnmodel.inference.nuts import TUNE, default_tune
    from attnmodel.model.pymc_model import build_model

    kw = {"mu_prior": (8, 2), "likelihood": False}
    beta = build_model(small_data, "beta", **kw)
    assert beta.parameterization == "identified"
    assert TUNE == {"from_mode": 500, "other": 1000}
    assert default_tune(beta, from_mode=True) == 500
    # No curvature start (the mode's Hessian unusable, or another sampler): PyMC's 1000.
    assert default_tune(beta, from_mode=False) == 1000
    two = build_model(small_data, "two_point", **kw)
    standard = build_model(small_data, "beta", parameterization="standard", **kw)
    assert two.parameterization == "identified"
    assert default_tune(two, from_mode=True) == 1000
    assert default_tune(standard, from_mode=True) == 1000


def test_default_tune_is_recorded_and_an_explicit_one_kept(small_data):
    """The identified Beta fit starts from the mode's curvature: 500 tuning steps by
    default, as the result records; an explicit ``tune`` is what runs."""
    kw = {**SMALL, "draws": 20, "chains": 1, "store_eta": False, "log_likelihood": False}
    del kw["tune"]
    default = sample_nuts(small_data, "beta", mu_prior=(8, 2), **kw)
    assert json.loads(default.attrs["settings"])["tune"] == 500
    assert default["sample_stats"].sizes["draw"] == 20
    explicit = sample_nuts(small_data, "beta", mu_prior=(8, 2), tune=30, **kw)
    assert json.loads(explicit.attrs["settings"])["tune"] == 30


def test_default_cores_use_the_usable_cpus():
    import os

    from attnmodel.inference.nuts import default_cores

    usable = len(os.sched_getaffinity(0))
    assert default_cores(4) == min(4, usable)
    assert default_cores(1) == 1


def test_summary_stride_defaults():
    from attnmodel.posterior.draws import SUMMARY_BUDGET, summary_thin

    assert SUMMARY_BUDGET == 1_000_000
    assert summary_thin(4000, 25, every_draw=False) == 1  # the paper's setting: every draw
    assert summary_thin(4000, 1800, every_draw=False) == 8  # 10^5 users: every 8th
    assert summary_thin(4000, 1800, every_draw=True) == 1  # per-user draws stored


# -- the paper's setting (slow) ------------------------------------------------------


def _globals(dt):
    return [v for v in dt["posterior"].data_vars if "user" not in dt["posterior"][v].dims]


def _check_convergence(dt):
    post = dt["posterior"]
    names = [v for v in _globals(dt) if float(np.ptp(post[v].values)) > 0]
    rhat = az.rhat(dt, var_names=names)
    bulk = az.ess(dt, var_names=names, method="bulk")
    tail = az.ess(dt, var_names=names, method="tail")
    for v in names:
        assert float(rhat[v].max()) <= 1.01, (v, float(rhat[v].max()))
        assert float(bulk[v].min()) >= 400, (v, float(bulk[v].min()))
        assert float(tail[v].min()) >= 400, (v, float(tail[v].min()))
    assert int(dt["sample_stats"]["diverging"].sum()) == 0


@pytest.fixture(scope="module")
def paper_beta():
    sim = am.simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 400, 50, mu=0.8, seed=0)
    return sim.to_data()


@pytest.mark.slow
def test_paper_beta_with_prior_converges_and_contains_em(paper_beta):
    dt = sample_nuts(paper_beta, "beta", mu_prior=(8, 2), progressbar=False)
    _check_convergence(dt)
    fit = am.fit_em(paper_beta, "beta", mu_prior=(8, 2))
    hdi = az.hdi(dt, var_names=["alpha", "beta", "mu"], prob=0.94)
    for name, value in [
        ("alpha", fit.params_["alpha"]),
        ("beta", fit.params_["beta"]),
        ("mu", fit.mu_.iloc[0]),
    ]:
        lo, hi = hdi[name].sel(ci_bound="lower").item(), hdi[name].sel(ci_bound="upper").item()
        assert lo <= value <= hi, (name, value, lo, hi)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["beta", "two_point"])
def test_paper_setting_with_mu_known_agrees_with_em(family):
    truth = (
        {"alpha": 3.0, "beta": 5.0}
        if family == "beta"
        else {"q_low": 0.6, "eta_low": 0.4, "eta_high": 0.98}
    )
    data = am.simulate_votes(family, truth, 400, 50, mu=0.8, seed=0).to_data()
    eta_star = 0.3618 if family == "beta" else 0.5  # median of Beta(3, 5)
    dt = sample_nuts(data, family, mu=0.8, progressbar=False, eta_star=eta_star)
    _check_convergence(dt)
    fit = am.fit_em(data, family, mu=0.8)
    p_em = am.user_posterior(fit, eta_star=eta_star)["p_above"].values
    p_nuts = dt["attentiveness"]["p_above"].values
    diff = np.abs(p_em - p_nuts)
    assert np.mean(diff <= 0.05) >= 0.95
    agree = np.mean((p_em >= 0.95) == (p_nuts >= 0.95))
    assert agree >= 0.97


@pytest.mark.slow
def test_find_map_degenerates_where_em_does_not(paper_beta):
    """The joint mode over (alpha, beta, mu, eta) is not the marginal one EM finds."""
    import pymc as pm

    from attnmodel.model.pymc_model import build_model

    attn = build_model(paper_beta, "beta", mu_prior=(8, 2), variant="latent")
    with attn.model:
        found = pm.find_MAP(
            progressbar=False, random_seed=0, jitter=False, return_inferencedata=True
        )
    joint = {k: np.asarray(v).squeeze() for k, v in found["posterior"].to_dataset().items()}
    fit = am.fit_em(paper_beta, "beta", mu_prior=(8, 2))
    # Joint MAP: P_eta collapses onto a point mass (alpha + beta run to the box's cap,
    # without the box they run on) and every user's eta with it; the marginal MAP
    # keeps a spread close to the truth's (sd of Beta(3, 5): 0.16).
    cap = attn.family.box(attn.grid)["alpha"][1]
    assert joint["alpha"] + joint["beta"] > 1.9 * cap
    assert np.std(joint["eta"]) < 0.05
    a, b = fit.params_["alpha"], fit.params_["beta"]
    assert np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))) > 0.1


@pytest.mark.slow
def test_nutpie_gives_the_same_posterior(small_data, small_fit):
    """nutpie samples the same model: posterior means agree within their Monte Carlo errors."""
    other = sample_nuts(small_data, "beta", mu=0.8, sampler="nutpie", **SMALL)
    assert other.attrs["sampler"] == "nutpie"
    for name in ("alpha", "beta"):
        a, b = small_fit["posterior"][name], other["posterior"][name]
        se = np.hypot(
            float(az.mcse(small_fit, var_names=[name])[name]),
            float(az.mcse(other, var_names=[name])[name]),
        )
        # 4 combined MCSEs: a two-sided check that fails by chance about 1 time in 16000.
        assert abs(float(a.mean()) - float(b.mean())) < 4 * se


def test_numpyro_needs_its_package(small_data):
    import importlib.util

    if importlib.util.find_spec("numpyro") is None:
        with pytest.raises(ImportError, match="pip install numpyro"):
            sample_nuts(small_data, "beta", mu=0.8, sampler="numpyro", **SMALL)
    else:
        dt = sample_nuts(small_data, "beta", mu=0.8, sampler="numpyro", **SMALL)
        assert dt.attrs["sampler"] == "numpyro"
