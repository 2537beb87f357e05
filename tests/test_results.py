"""The shared result tree: structure of an EM result, exact eta draws, files, summaries.

Expected values come from the EMResult the tree is built from (its
parameters, history and :func:`user_posterior`), from ArviZ applied directly
to the draws, or are fixed by construction (NUTS-shaped trees from
``tests/nuts_trees.py``).
"""

from __future__ import annotations

import json
import os

import arviz_base
import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import attnmodel
from attnmodel import fit_em, simulate_counts, user_posterior
from attnmodel.data.votes import VoteData
from attnmodel.posterior.users import draw_eta
from attnmodel.results.em import em_to_datatree
from attnmodel.results.io import load, save
from attnmodel.results.summary import (
    convergence_table,
    diagnostic_checks,
    global_vars,
    summarize,
    user_table,
)
from attnmodel.results.tree import RESULT_MARKER
from tests.nuts_trees import nuts_like

BETA_TRUTH = {"alpha": 3.0, "beta": 5.0}


@pytest.fixture(scope="module")
def multi_fit(multi_pair_sim):
    """Beta fit, three pairs (one mu known, two under a prior), string user ids."""
    return fit_em(multi_pair_sim.to_data(), "beta", mu={"gpt vs llama": 0.9}, n_init=2, seed=1)


@pytest.fixture(scope="module")
def multi_tree(multi_fit):
    return em_to_datatree(multi_fit, eta_star=0.4, hdi_prob=0.9, n_draws=40, seed=3)


@pytest.fixture(scope="module")
def kpoint_fit():
    """k_point (K = 3) fit with integer user ids: the component dim and int coordinates."""
    n, s, _ = simulate_counts("beta", BETA_TRUTH, 50, (5, 40), 0.8, seed=2)
    return fit_em(VoteData.from_counts(n, s), "k_point", n_components=3, mu=0.8, n_init=2)


# ---------------------------------------------------------------------------
# Structure of an EM tree
# ---------------------------------------------------------------------------


def test_em_tree_root_attributes(multi_fit, multi_tree):
    a = multi_tree.attrs
    assert a[RESULT_MARKER] == 1 and type(a[RESULT_MARKER]) is int
    assert a["attnmodel_version"] == attnmodel.__version__
    assert (a["method"], a["family"], a["n_components"]) == ("em", "beta", 1)
    assert (a["eta_star"], a["hdi_prob"]) == (0.4, 0.9)
    assert a["converged"] == 1 and a["n_iter"] == multi_fit.n_iter_
    assert a["objective"] == multi_fit.objective_
    spec = json.loads(a["mu_spec"])
    assert spec["pairs"] == list(multi_fit.mu_spec.pairs)
    assert spec["known"] == {"gpt vs llama": 0.9}
    default = attnmodel.DEFAULT_MU_PRIOR
    prior = [default.alpha, default.beta, default.lower, default.upper]
    assert spec["priors"] == {p: prior for p in spec["pairs"] if p != "gpt vs llama"}
    settings = json.loads(a["settings"])
    assert settings["n_init"] == 2 and settings["n_draws"] == 40 and settings["store_eta"] is True
    assert settings["all_converged"] == multi_fit.settings["all_converged"]
    # Each mu's description and, when EM maximised the PyMC model's prior, the
    # family parameters' priors (as NUTS results list them).
    priors = json.loads(a["priors"])
    mu_desc = {f"mu[{p}]": d for p, d in multi_fit.mu_spec.describe().items()}
    assert {k: v for k, v in priors.items() if k.startswith("mu[")} == mu_desc
    # (The Beta shapes' joint prior is listed under its own key.)
    family_keys = set(multi_fit.family.param_names) | {"mean_concentration"}
    assert set(priors) - set(mu_desc) <= family_keys
    # netCDF cannot store bool or None attributes.
    assert all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in a.values())


def test_em_tree_posterior_repeats_the_estimate(multi_fit, multi_tree):
    post = multi_tree["posterior"]
    assert set(multi_tree.children) == {"posterior", "attentiveness", "em_trace", "em_runs"}
    assert dict(post.sizes) == {"chain": 1, "draw": 40, "pair": 3, "user": 150}
    assert sorted(global_vars(multi_tree)) == ["alpha", "beta", "mu"]
    for key in ("alpha", "beta"):
        assert post[key].dims == ("chain", "draw")
        assert np.all(post[key].to_numpy() == multi_fit.params_[key])
    assert post["mu"].dims == ("chain", "draw", "pair")
    assert list(post["pair"].to_numpy()) == list(multi_fit.mu_.index)
    np.testing.assert_array_equal(post["mu"].to_numpy()[0, 7], multi_fit.mu_.to_numpy())
    assert post["eta"].dims == ("chain", "draw", "user")
    assert list(post["user"].to_numpy()) == list(multi_fit.data.users)


def test_em_tree_attentiveness_is_the_exact_posterior(multi_fit, multi_tree):
    attn = multi_tree["attentiveness"]
    ref = user_posterior(multi_fit, eta_star=0.4, hdi_prob=0.9)
    for name in ("eta_mean", "eta_sd", "eta_map", "eta_hdi", "p_above", "n_votes"):
        np.testing.assert_array_equal(attn[name].to_numpy(), ref[name].to_numpy(), err_msg=name)
    assert attn["eta_hdi"].dims == ("user", "ci_bound")
    assert list(attn["ci_bound"].to_numpy()) == ["lower", "upper"]
    assert np.all(attn["p_above_mcse"].to_numpy() == 0.0)
    assert "chain" not in attn.dims and "membership" not in attn


def test_em_trace_holds_the_history_with_dims(multi_fit, multi_tree):
    trace = multi_tree["em_trace"]
    hist = multi_fit.history_
    assert trace.sizes["iteration"] == len(hist)
    np.testing.assert_array_equal(trace["objective"].to_numpy(), hist["objective"].to_numpy())
    assert np.all(np.diff(trace["objective"].to_numpy()) >= 0)
    assert list(trace["step"].to_numpy()) == list(hist["step"])
    np.testing.assert_array_equal(trace["alpha"].to_numpy(), hist["alpha"].to_numpy())
    assert trace["mu"].dims == ("iteration", "pair")
    for pair in multi_fit.mu_.index:
        np.testing.assert_array_equal(
            trace["mu"].sel(pair=pair).to_numpy(), hist[f"mu[{pair}]"].to_numpy()
        )
    runs = multi_tree["em_runs"]
    lengths = [len(r) for r in multi_fit.runs_]
    assert len(set(lengths)) > 1  # so that padding is exercised
    assert dict(runs.sizes)["start"] == 2 and runs.sizes["iteration"] == max(lengths)
    for k, n in enumerate(lengths):
        obj = runs["objective"].isel(start=k).to_numpy()
        np.testing.assert_array_equal(obj[:n], multi_fit.runs_[k]["objective"].to_numpy())
        assert np.all(np.isnan(obj[n:]))
        assert list(runs["step"].isel(start=k).to_numpy()[n:]) == [""] * (max(lengths) - n)


def test_vector_parameters_get_a_component_dim(kpoint_fit):
    dt = em_to_datatree(kpoint_fit, n_draws=10)
    post, trace = dt["posterior"], dt["em_trace"]
    assert post["weights"].dims == ("chain", "draw", "component")
    assert list(post["component"].to_numpy()) == [0, 1, 2]
    np.testing.assert_array_equal(
        post["locations"].to_numpy()[0, 3], kpoint_fit.params_["locations"]
    )
    assert trace["weights"].dims == ("iteration", "component")
    np.testing.assert_array_equal(
        trace["weights"].to_numpy()[:, 2], kpoint_fit.history_["weights[2]"].to_numpy()
    )
    attn = dt["attentiveness"]
    assert attn["membership"].dims == ("user", "component")
    assert attn["user"].dtype == np.int64


# ---------------------------------------------------------------------------
# eta draws
# ---------------------------------------------------------------------------


def test_continuous_eta_draws_match_the_exact_moments():
    # Users with up to 3000 votes have posteriors a few grid cells wide: where a
    # sampler that spread draws uniformly over a cell would inflate the variance.
    n, s, _ = simulate_counts("beta", BETA_TRUTH, 100, (20, 3000), 0.8, seed=4)
    fit = fit_em(VoteData.from_counts(n, s), "beta", mu=0.8, n_init=1)
    n_draws = 4000
    eta = draw_eta(fit, n_draws, seed=9)
    post = user_posterior(fit)
    mean, sd = post["eta_mean"].to_numpy(), post["eta_sd"].to_numpy()
    # Continuous: no two draws coincide.
    assert np.unique(eta).size == eta.size
    assert np.all((eta > 0) & (eta < 1))
    # Monte Carlo standard errors of a mean and of a variance from n iid draws.
    z_mean = (eta.mean(0) - mean) / (sd / np.sqrt(n_draws))
    var = eta.var(0)
    m4 = ((eta - eta.mean(0)) ** 4).mean(0)
    z_var = (var - sd**2) / np.sqrt((m4 - var**2) / n_draws)
    # 100 users: P(max |z| > 4.5) ~ 100 * 7e-6 under exact sampling (z_var, whose
    # scale uses the estimated fourth moment, has heavier tails: bound 5). The
    # average of 100 independent z has sd 0.1, and 0.4 is 4 of them; spreading the
    # draws uniformly within each cell instead moves the average z_var to ~0.6.
    assert np.max(np.abs(z_mean)) < 4.5 and np.max(np.abs(z_var)) < 5.0
    assert abs(z_mean.mean()) < 0.4 and abs(z_var.mean()) < 0.4


def test_discrete_eta_draws_follow_membership(kpoint_fit):
    n_draws = 2000
    eta = draw_eta(kpoint_fit, n_draws, seed=1)
    loc = kpoint_fit.params_["locations"]
    assert set(np.unique(eta)) <= set(loc)
    member = user_posterior(kpoint_fit)["membership"].to_numpy()
    freq = (eta[:, :, None] == loc[None, None, :]).mean(axis=0)
    se = np.sqrt(member * (1 - member) / n_draws)
    # 50 users x 3 atoms: 5 binomial standard errors (plus a floor for p ~ 0 or 1).
    assert np.all(np.abs(freq - member) <= 5 * se + 1e-12)


def test_eta_draws_are_seeded(kpoint_fit):
    a = em_to_datatree(kpoint_fit, n_draws=20, seed=5)["posterior"]["eta"]
    b = em_to_datatree(kpoint_fit, n_draws=20, seed=5)["posterior"]["eta"]
    c = em_to_datatree(kpoint_fit, n_draws=20, seed=6)["posterior"]["eta"]
    xr.testing.assert_identical(a, b)
    assert not a.equals(c)


def test_store_eta_auto_and_forced(kpoint_fit, monkeypatch):
    # 50 users x 20 draws = 1000 numbers: above a limit of 999, auto leaves eta out.
    monkeypatch.setattr("attnmodel.results.em.AUTO_ETA_LIMIT", 999)
    auto = em_to_datatree(kpoint_fit, n_draws=20)
    assert "eta" not in auto["posterior"] and "user" not in auto["posterior"].coords
    assert "eta" in em_to_datatree(kpoint_fit, n_draws=20, store_eta=True)["posterior"]
    monkeypatch.setattr("attnmodel.results.em.AUTO_ETA_LIMIT", 1000)
    assert "eta" in em_to_datatree(kpoint_fit, n_draws=20)["posterior"]
    assert "eta" not in em_to_datatree(kpoint_fit, n_draws=20, store_eta=False)["posterior"]
    with pytest.raises(ValueError, match="store_eta"):
        em_to_datatree(kpoint_fit, store_eta="yes")
    with pytest.raises(ValueError, match="n_draws"):
        em_to_datatree(kpoint_fit, n_draws=0)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _assert_same_tree(back: xr.DataTree, dt: xr.DataTree) -> None:
    xr.testing.assert_identical(back, dt)
    assert back.attrs == dt.attrs
    assert {k: type(v) for k, v in back.attrs.items()} == {k: type(v) for k, v in dt.attrs.items()}
    for node in dt.subtree:
        other = back[node.path] if node.path != "/" else back
        assert set(other.variables) == set(node.variables), node.path
        for name, var in node.variables.items():
            assert other[name].dtype == var.dtype, (node.path, name)
            assert other[name].attrs == var.attrs, (node.path, name)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("which", ["strings", "ints"])
def test_round_trip(suffix, which, multi_tree, kpoint_fit, tmp_path):
    dt = multi_tree if which == "strings" else em_to_datatree(kpoint_fit, n_draws=15)
    path = save(dt, tmp_path / f"fit{suffix}")
    assert path == tmp_path / f"fit{suffix}"
    back = load(path)
    _assert_same_tree(back, dt)
    users = back["attentiveness"]["user"].to_numpy()
    if which == "ints":
        assert users.dtype == np.int64
    else:
        assert users.dtype == object and isinstance(users[0], str)
    # Fully in memory: the file can go.
    if suffix == ".nc":
        os.remove(path)
    else:
        import shutil

        shutil.rmtree(path)
    assert float(back["posterior"]["eta"].sum()) == float(dt["posterior"]["eta"].sum())


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_save_refuses_to_overwrite_and_force_replaces(suffix, multi_tree, kpoint_fit, tmp_path):
    path = tmp_path / f"fit{suffix}"
    save(multi_tree, path)
    other = em_to_datatree(kpoint_fit, n_draws=5)
    with pytest.raises(FileExistsError, match=str(path)):
        save(other, path)
    assert load(path).attrs["family"] == "beta"
    save(other, path, force=True)
    assert load(path).attrs["family"] == "k_point"
    # Nothing temporary is left beside the target.
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_save_checks_suffix_and_input(multi_tree, tmp_path):
    for name in ("fit.h5", "fit.txt", "fit"):
        with pytest.raises(ValueError, match=r"\.nc.*\.zarr"):
            save(multi_tree, tmp_path / name)
    plain = xr.DataTree(xr.Dataset({"a": ("x", [1.0])}))
    with pytest.raises(ValueError, match="not an attnmodel result"):
        save(plain, tmp_path / "plain.nc")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(NotADirectoryError, match="file.zarr"):
        save(multi_tree, tmp_path / "file.zarr", force=True)
    assert not (tmp_path / "plain.nc").exists()


def test_load_refuses_what_is_not_a_result(multi_tree, tmp_path):
    missing = tmp_path / "missing.nc"
    with pytest.raises(FileNotFoundError, match="missing.nc"):
        load(missing)
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(tmp_path / "plain.nc", engine="h5netcdf")
    az_tree = arviz_base.from_dict({"posterior": {"a": np.zeros((2, 10))}})
    az_tree.to_netcdf(tmp_path / "arviz.nc", engine="h5netcdf")
    az_tree.to_zarr(tmp_path / "arviz.zarr", consolidated=False)
    (tmp_path / "junk.nc").write_text("not netcdf")
    for name in ("plain.nc", "arviz.nc", "arviz.zarr"):
        with pytest.raises(ValueError, match=rf"{name}.*not an attnmodel result"):
            load(tmp_path / name)
    with pytest.raises(ValueError, match="junk.nc.*could not be read"):
        load(tmp_path / "junk.nc")
    # The marker without the attentiveness group is an incomplete result.
    partial = multi_tree.copy()
    del partial["attentiveness"]
    partial.to_netcdf(tmp_path / "partial.nc", engine="h5netcdf")
    with pytest.raises(ValueError, match="partial.nc.*attentiveness"):
        load(tmp_path / "partial.nc")
    with pytest.raises(ValueError, match="fit.json"):
        load(tmp_path / "fit.json")


# ---------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------


def test_summarize_em(multi_fit, multi_tree):
    s = summarize(multi_tree)
    assert (s["family"], s["method"], s["n_users"], s["eta_star"]) == ("beta", "em", 150, 0.4)
    assert s["params"] == {k: float(v) for k, v in multi_fit.params_.items()}
    assert s["mu"] == multi_fit.mu_.to_dict()
    assert s["converged"] is True and s["params_hdi"] == {}
    assert s["diagnostics"] == {"n_iter": multi_fit.n_iter_, "objective": multi_fit.objective_}


def test_user_table(kpoint_fit):
    dt = em_to_datatree(kpoint_fit, n_draws=5)
    table = user_table(dt)
    assert list(table.columns) == [
        "user",
        "eta_mean",
        "eta_sd",
        "eta_hdi_lower",
        "eta_hdi_upper",
        "p_above",
        "p_above_mcse",
        "log_bf",
        "n_votes",
    ]
    post = user_posterior(kpoint_fit)
    np.testing.assert_array_equal(table["log_bf"], post["log_bf"].to_numpy())
    assert list(table["user"]) == list(kpoint_fit.data.users)
    np.testing.assert_array_equal(table["eta_hdi_upper"], post["eta_hdi"].to_numpy()[:, 1])
    np.testing.assert_array_equal(table["n_votes"], kpoint_fit.data.votes_per_user().to_numpy())
    assert table["n_votes"].dtype == np.int64


@pytest.fixture(scope="module")
def nuts_trees(multi_fit, multi_tree):
    good = nuts_like(multi_fit, multi_tree, seed=0)
    bad = nuts_like(multi_fit, multi_tree, shift=0.2, divergences=3, seed=1)
    return good, bad


def test_convergence_table_matches_arviz_and_skips_constants(multi_fit, nuts_trees):
    good, _ = nuts_trees
    table = convergence_table(good)
    assert list(table.index) == ["alpha", "beta"] + [f"mu[{p}]" for p in multi_fit.mu_.index]
    # The known mu never moves: no r_hat, and it is flagged constant.
    assert table.loc["mu[gpt vs llama]", "constant"]
    assert table.loc["mu[gpt vs llama]", ["r_hat", "ess_bulk", "ess_tail"]].isna().all()
    post = good["posterior"]
    ref = post["mu"].sel(pair="claude vs alpaca")
    assert table.loc["mu[claude vs alpaca]", "r_hat"] == float(azs.rhat(ref))
    assert table.loc["alpha", "ess_tail"] == float(azs.ess(post["alpha"], method="tail"))


def test_diagnostic_checks_and_summarize_nuts(nuts_trees):
    good, bad = nuts_trees
    ok = diagnostic_checks(good)
    assert list(ok.index) == ["r_hat", "ess_bulk", "ess_tail", "divergences"]
    # 4 chains x 250 iid draws: r_hat within ~1e-3 of 1 and ESS near 1000.
    assert ok["passed"].all(), ok
    s = summarize(good)
    assert s["method"] == "nuts" and s["converged"] is True
    assert s["diagnostics"]["divergences"] == 0
    table = convergence_table(good)
    assert s["diagnostics"]["max_rhat"] == table["r_hat"].max()
    assert s["diagnostics"]["min_ess_bulk"] == table["ess_bulk"].min()
    post = good["posterior"]
    assert s["params"]["alpha"] == pytest.approx(float(post["alpha"].mean()), rel=1e-14)
    lo, hi = s["params_hdi"]["alpha"]
    ref = azs.hdi(post["alpha"], prob=0.9)
    assert (lo, hi) == (float(ref.sel(ci_bound="lower")), float(ref.sel(ci_bound="upper")))
    assert s["mu"]["gpt vs llama"] == 0.9

    checks = diagnostic_checks(bad)
    # Chain 0 is shifted by 0.2 against a spread of 0.02: r_hat far above 1.01.
    assert not checks.loc["r_hat", "passed"] and checks.loc["r_hat", "value"] > 1.5
    assert checks.loc["r_hat", "variable"] in table.index
    assert checks.loc["divergences", "value"] == 3 and not checks.loc["divergences", "passed"]
    assert diagnostic_checks(bad, rhat_max=10, ess_min=1, max_divergences=3)["passed"].all()
    assert summarize(bad)["converged"] is False
    assert summarize(bad)["diagnostics"]["divergences"] == 3


def test_nuts_shaped_tree_round_trips(nuts_trees, tmp_path):
    good, _ = nuts_trees
    _assert_same_tree(load(save(good, tmp_path / "nuts.zarr")), good)
    frame = user_table(good)
    assert isinstance(frame, pd.DataFrame) and (frame["p_above_mcse"] > 0).any()


# ---------------------------------------------------------------------------
# fit(): the method dispatcher
# ---------------------------------------------------------------------------


def test_fit_em_is_fit_em_then_the_tree(kpoint_fit):
    from attnmodel.inference.fitting import fit

    data = kpoint_fit.data
    dt = fit(data, "k_point", n_components=3, mu=0.8, n_init=2, n_draws=12, hdi_prob=0.8, seed=0)
    ref = em_to_datatree(kpoint_fit, n_draws=12, hdi_prob=0.8, seed=0)
    # Same fit, same draws; only the fit's wall time differs in the settings.
    settings, ref_settings = json.loads(dt.attrs["settings"]), json.loads(ref.attrs["settings"])
    settings.pop("fit_seconds"), ref_settings.pop("fit_seconds")
    assert settings == ref_settings
    dt.attrs["settings"] = ref.attrs["settings"]
    xr.testing.assert_identical(dt, ref)
    assert "eta" not in fit(data, "beta", mu=0.8, n_init=1, store_eta=False)["posterior"]


def test_fit_validates_method_and_arguments(kpoint_fit):
    from attnmodel.inference.fitting import fit

    with pytest.raises(ValueError, match=r"unknown method 'mcmc'.*'em', 'nuts'"):
        fit(kpoint_fit.data, "beta", method="mcmc")
    with pytest.raises(TypeError, match=r"n_inits.*n_init"):
        fit(kpoint_fit.data, "beta", n_inits=2)


def test_fit_nuts_hands_everything_to_sample_nuts(kpoint_fit, monkeypatch):
    import sys
    import types

    from attnmodel.inference.fitting import fit

    calls = []
    fake = types.ModuleType("attnmodel.inference.nuts")
    fake.sample_nuts = lambda *args, **kwargs: calls.append((args, kwargs)) or "tree"
    monkeypatch.setitem(sys.modules, "attnmodel.inference.nuts", fake)
    out = fit(kpoint_fit.data, "beta", method="nuts", mu=0.8, eta_star=0.6, seed=3, draws=50)
    assert out == "tree"
    assert calls == [
        (
            (kpoint_fit.data, "beta"),
            {
                "mu": 0.8,
                "mu_prior": None,
                "eta_star": 0.6,
                "seed": 3,
                "progressbar": True,
                "draws": 50,
            },
        )
    ]


def test_fit_dispatches_through_the_method_registry(kpoint_fit, monkeypatch):
    from attnmodel.inference import registry
    from attnmodel.inference.fitting import fit

    assert set(registry.METHODS) == {"em", "nuts"}
    calls = []

    def run_fake(data, family, **kwargs):
        calls.append((data, family, kwargs))
        return "fake tree"

    monkeypatch.setitem(registry.METHODS, "fake", run_fake)
    assert fit(kpoint_fit.data, "beta", method="fake", eta_star=0.3, seed=4, knob=1) == "fake tree"
    assert calls == [
        (
            kpoint_fit.data,
            "beta",
            {
                "mu": None,
                "mu_prior": None,
                "eta_star": 0.3,
                "seed": 4,
                "progressbar": True,
                "knob": 1,
            },
        )
    ]
    # The error lists every registered method.
    listed = r"unknown method 'smc'; choose one of 'em', 'nuts', 'fake'"
    with pytest.raises(ValueError, match=listed):
        fit(kpoint_fit.data, "beta", method="smc")


# ---------------------------------------------------------------------------
# One builder: schema, provenance
# ---------------------------------------------------------------------------


def _documented_root_attrs() -> set[str]:
    import re

    import attnmodel.results.tree as tree_module

    doc = tree_module.__doc__
    section = doc[doc.index("root attributes") : doc.index("``posterior``\n")]
    return set(re.findall(r"``(\w+)``", section))


def test_schema_documents_every_root_attribute(multi_tree, nuts_trees, kpoint_fit):
    from attnmodel.inference.fitting import fit

    with_provenance = fit(
        kpoint_fit.data,
        "beta",
        mu=0.8,
        n_init=1,
        n_draws=2,
        provenance={"source": "votes.csv", "options": {"user": "judge"}},
    )
    # The NUTS trees of the tests are made by hand: their own attributes are
    # those sample_nuts writes (tests/test_nuts.py reads them from a real run).
    nuts_attrs = {"sampler", "variant", "parameterization", "chains", "draws", "tune", "seed"}
    written = set(multi_tree.attrs) | set(with_provenance.attrs) | nuts_attrs
    assert {"data_source", "data_options"} <= set(with_provenance.attrs)
    missing = written - _documented_root_attrs()
    assert not missing, f"root attributes not in the schema docstring: {sorted(missing)}"


def test_build_tree_writes_the_schema_and_the_provenance(multi_fit, multi_tree):
    from attnmodel.results.tree import build_tree, validate_tree

    groups = {
        "posterior": multi_tree["posterior"].to_dataset(),
        "attentiveness": multi_tree["attentiveness"].to_dataset(),
        "smc_stats": xr.Dataset({"ess": ("stage", np.array([10.0, 20.0]))}),
    }
    dt = build_tree(
        "smc",
        multi_fit.family,
        multi_fit.mu_spec,
        {"alpha": "Gamma(2, 0.5)"},
        groups,
        eta_star=0.3,
        hdi_prob=0.8,
        settings={"stages": np.int64(2), "path": os.path.join("a", "b"), "tol": float("inf")},
        attrs={"stages": 2},
        provenance={"source": os.path.join("data", "votes.csv"), "options": {"tie": ("t", 1)}},
    )
    validate_tree(dt, "the built tree")
    a = dt.attrs
    assert a[RESULT_MARKER] == 1 and a["attnmodel_version"] == attnmodel.__version__
    assert (a["method"], a["family"], a["n_components"]) == ("smc", "beta", 1)
    assert (a["eta_star"], a["hdi_prob"], a["stages"]) == (0.3, 0.8, 2)
    assert a["mu_spec"] == multi_tree.attrs["mu_spec"]
    assert json.loads(a["priors"]) == {"alpha": "Gamma(2, 0.5)"}
    assert json.loads(a["settings"]) == {"stages": 2, "path": os.path.join("a", "b"), "tol": "inf"}
    assert a["data_source"] == os.path.join("data", "votes.csv")
    assert json.loads(a["data_options"]) == {"tie": ["t", 1]}
    assert list(dt.children) == ["posterior", "attentiveness", "smc_stats"]
    # Without provenance neither attribute is written.
    assert "data_source" not in multi_tree.attrs and "data_options" not in multi_tree.attrs
    only_posterior = {"posterior": groups["posterior"]}
    with pytest.raises(ValueError, match="attentiveness"):
        build_tree(
            "smc",
            multi_fit.family,
            multi_fit.mu_spec,
            "{}",
            only_posterior,
            eta_star=0.3,
            hdi_prob=0.8,
        )


def test_fit_takes_the_provenance_from_the_data(kpoint_fit, monkeypatch):
    from attnmodel.inference.fitting import fit

    data = kpoint_fit.data
    monkeypatch.setattr(data, "source", "runs/votes.parquet", raising=False)
    monkeypatch.setattr(data, "read_options", {"user": "judge", "pair": None}, raising=False)
    dt = fit(data, "beta", mu=0.8, n_init=1, n_draws=2)
    assert dt.attrs["data_source"] == "runs/votes.parquet"
    assert json.loads(dt.attrs["data_options"]) == {"user": "judge", "pair": None}
    # An explicit provenance wins over the data's.
    dt = fit(data, "beta", mu=0.8, n_init=1, n_draws=2, provenance={"source": "elsewhere"})
    assert dt.attrs["data_source"] == "elsewhere" and "data_options" not in dt.attrs


# ---------------------------------------------------------------------------
# user_posterior takes a tree
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["multi", "kpoint"])
def test_user_posterior_of_an_em_tree_is_that_of_its_fit(which, multi_fit, multi_tree, kpoint_fit):
    if which == "multi":
        fit, tree = multi_fit, multi_tree
    else:
        fit, tree = kpoint_fit, em_to_datatree(kpoint_fit, n_draws=5)
    star, hdi = float(tree.attrs["eta_star"]), float(tree.attrs["hdi_prob"])
    from_fit = user_posterior(fit, eta_star=star, hdi_prob=hdi)
    from_tree = user_posterior(tree)
    assert from_tree.attrs == from_fit.attrs
    assert (from_tree["p_above_mcse"] == 0).all()
    xr.testing.assert_equal(from_tree.drop_vars("p_above_mcse").drop_attrs(), from_fit.drop_attrs())
    xr.testing.assert_equal(user_posterior(tree, eta_star=star, hdi_prob=hdi), from_tree)


def test_user_posterior_of_a_tree_at_another_cut_uses_the_draws(multi_fit, multi_tree, nuts_trees):
    from attnmodel.posterior.draws import p_above_from_draws

    for tree in (multi_tree, nuts_trees[0]):
        post = user_posterior(tree, eta_star=0.7)
        p, mcse, _ = p_above_from_draws(tree, 0.7)
        np.testing.assert_array_equal(post["p_above"], p.to_numpy())
        np.testing.assert_array_equal(post["p_above_mcse"], mcse.to_numpy())
        assert post.attrs["eta_star"] == 0.7 and post.attrs["method"] == tree.attrs["method"]
        # Everything but p_above is the tree's own.
        xr.testing.assert_equal(post["eta_mean"], tree["attentiveness"]["eta_mean"])
    # The exact posterior at 0.7, within 4.5 binomial standard errors of 40 draws.
    exact = user_posterior(multi_fit, eta_star=0.7, hdi_prob=0.9)["p_above"].to_numpy()
    got = user_posterior(multi_tree, eta_star=0.7)["p_above"].to_numpy()
    assert np.all(np.abs(got - exact) <= 4.5 * np.sqrt(exact * (1 - exact) / 40) + 1e-9)
    with pytest.raises(ValueError, match="hdi_prob=0.9 only"):
        user_posterior(multi_tree, hdi_prob=0.5)
    bare = em_to_datatree(multi_fit, n_draws=3, store_eta=False)
    with pytest.raises(ValueError, match="eta draws"):
        user_posterior(bare, eta_star=0.7)
