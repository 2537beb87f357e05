"""The PyMC model: its priors, its marginal likelihood, its coordinates and EM's use of it."""

import numpy as np
import pymc as pm
import pytensor
import pytest
from scipy import stats

import attnmodel as am
from attnmodel.inference.em import EMState
from attnmodel.model.families.beta import beta_shape_max
from attnmodel.model.priors import BetaPrior, ModelPrior, Prior, default_priors, flat_priors
from attnmodel.model.pymc_model import build_model

#: Compiling with the Python linker is much faster than Numba for one-off evaluations.
FAST = "FAST_COMPILE"

PARAMS = {
    "two_point": {"q_low": 0.6, "eta_low": 0.35, "eta_high": 0.9},
    "k_point": {"weights": np.array([0.3, 0.5, 0.2]), "locations": np.array([0.1, 0.5, 0.95])},
    "beta": {"alpha": 2.5, "beta": 4.0},
    "beta_mixture": {
        "weights": np.array([0.4, 0.6]),
        "alpha": np.array([1.5, 6.0]),
        "beta": np.array([5.0, 2.0]),
    },
    "logistic_normal_mixture": {
        "weights": np.array([0.3, 0.7]),
        "logit_mean": np.array([-1.0, 1.5]),
        "logit_sd": np.array([0.8, 0.6]),
    },
}


@pytest.fixture(scope="module")
def two_pair_data():
    sim = am.simulate_votes(
        "beta",
        {"alpha": 3.0, "beta": 5.0},
        60,
        (5, 40),
        mu={"A vs B": 0.8, "A vs C": 0.7},
        pairs=["A vs B", "A vs C"],
        seed=3,
    )
    return sim.to_data()


def _point(attn, params, mu):
    """Transformed point of the standard parameterization at given constrained values."""
    model = attn.model
    for rv in model.free_RVs:
        if rv.name == "_locations":
            value = np.array([params["eta_low"], params["eta_high"]])
        elif rv.name == "mu":
            value = np.asarray(mu, dtype=float)
        else:
            value = np.asarray(params[rv.name], dtype=float)
        model.set_initval(rv, value)
    return model.initial_point()


def _potential(attn, name):
    model = attn.model
    pot = next(p for p in model.potentials if p.name == name)
    # Model graphs refer to random variables; evaluate them at the value variables.
    (pot,) = model.replace_rvs_by_values([pot])
    return model.compile_fn(pot, inputs=model.value_vars, on_unused_input="ignore", mode=FAST)


def _binomial_const(counts):
    n, s = counts.entry_n.astype(float), counts.entry_s.astype(float)
    c = stats.binom.logpmf(s, n, 0.5) - n * np.log(0.5)
    return float(counts.row_weight @ counts.row_sum(c))


@pytest.mark.parametrize("family", list(PARAMS))
def test_marginal_potential_equals_em_loglik(two_pair_data, family):
    """The model's marginal likelihood is EM's (plus the binomial coefficients EM leaves out)."""
    k = 3 if family == "k_point" else 2 if family in ("beta_mixture",) else None
    if family == "logistic_normal_mixture":
        k = 2
    mu = np.array([0.78, 0.66])
    attn = build_model(
        two_pair_data, family, mu_prior=(8, 2), n_components=k, parameterization="standard"
    )
    fn = _potential(attn, "votes")
    value = float(fn(_point(attn, PARAMS[family], mu)))
    from attnmodel.inference.em import EMProblem

    em = EMProblem(two_pair_data.counts, attn.family, attn.mu_spec, grid=attn.grid)
    ll = em.e_step(EMState(PARAMS[family], mu)).log_likelihood
    # Both are sums of the same log-sum-exps; only rounding separates them.
    assert value == pytest.approx(ll + _binomial_const(two_pair_data.counts), rel=1e-10)


def test_known_mu_uses_the_fixed_likelihood(two_pair_data):
    attn = build_model(two_pair_data, "beta", mu={"A vs B": 0.8, "A vs C": 0.7})
    assert [v.name for v in attn.model.free_RVs] == ["alpha", "beta"]
    fn = _potential(attn, "votes")
    from attnmodel.inference.em import EMProblem

    em = EMProblem(two_pair_data.counts, attn.family, attn.mu_spec, grid=attn.grid)
    ll = em.e_step(EMState(PARAMS["beta"], np.array([0.8, 0.7]))).log_likelihood
    value = float(fn(_point(attn, PARAMS["beta"], None)))
    assert value == pytest.approx(ll + _binomial_const(two_pair_data.counts), rel=1e-10)


@pytest.mark.parametrize(
    "prior", [BetaPrior(8, 2), BetaPrior(2, 2, 0.5, 1.0), BetaPrior(3, 1.5, 0.2, 0.95)]
)
def test_mu_prior_in_the_model_is_the_truncated_beta(two_pair_data, prior):
    attn = build_model(two_pair_data, "beta", mu_prior=prior, parameterization="standard")
    mu_rv = attn.model["mu"]
    x = pytensor.tensor.vector("x")
    logp = pytensor.function([x], pm.logp(mu_rv, x), mode=FAST)
    grid = np.linspace(0.51, prior.upper - 1e-3, 7)
    for v in grid:
        got = logp(np.array([v, v]))
        np.testing.assert_allclose(got, prior.logpdf(v), rtol=1e-12)
    assert np.all(np.isneginf(logp(np.array([0.5, 0.45]))))
    # Draws from the model's prior: mean within 4 standard errors of the exact mean.
    draws = pm.draw(mu_rv, draws=4000, random_seed=1, mode=FAST)[:, 0]
    lo, hi = prior.support
    assert draws.min() > lo and draws.max() <= hi
    xs = np.linspace(lo, hi, 20001)
    dens = np.exp(prior.logpdf(xs[1:]))
    exact = np.trapezoid(xs[1:] * dens, xs[1:]) / np.trapezoid(dens, xs[1:])
    assert abs(draws.mean() - exact) < 4 * draws.std() / np.sqrt(draws.size)


def _identified_logdensity(attn):
    model = attn.model
    z = model.value_vars[0]
    logp = model.compile_logp(jacobian=True, mode=FAST)
    names = list(attn.family.param_names)
    outs = model.replace_rvs_by_values([model[n] for n in names] + [model["mu"]])
    det = model.compile_fn(outs, inputs=[z], on_unused_input="ignore", mode=FAST)
    return logp, det, z.name


@pytest.mark.parametrize("family", ["beta", "two_point", "k_point"])
@pytest.mark.parametrize("pairs", [1, 2])
def test_identified_coordinates_carry_the_same_posterior(two_pair_data, family, pairs):
    """log p(z) = log p(params, mu | data) + log |d(params, mu) / dz| (finite differences)."""
    data = two_pair_data
    if pairs == 1:
        sim = am.simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 50, 30, mu=0.8, seed=2)
        data = sim.to_data()
    k = 3 if family == "k_point" else None
    ident = build_model(data, family, mu_prior=(8, 2), n_components=k)
    assert ident.parameterization == "identified"
    std = build_model(data, family, mu_prior=(8, 2), n_components=k, parameterization="standard")
    logp_z, params_of, zname = _identified_logdensity(ident)
    logp_std = std.model.compile_logp(jacobian=False, mode=FAST)
    rng = np.random.default_rng(0)
    size = ident.model.initial_point()[zname].size
    checked = 0
    offsets = []
    for _ in range(15):
        z = rng.normal(0.0, 0.7, size)
        lz = float(logp_z({zname: z}))
        if not np.isfinite(lz):
            continue

        def flat(v):
            out = params_of({zname: v})
            vec = []
            for name, val in zip(list(ident.family.param_names) + ["mu"], out, strict=True):
                val = np.atleast_1d(val)
                vec.extend(val[:-1] if name == "weights" else val)
            return np.array(vec)

        # Central differences of the map; step chosen for ~1e-8 relative accuracy.
        h = 1e-5
        jac = np.empty((size, size))
        for i in range(size):
            e = np.zeros(size)
            e[i] = h
            jac[:, i] = (flat(z + e) - flat(z - e)) / (2 * h)
        out = params_of({zname: z})
        params = dict(zip(ident.family.param_names, out[:-1], strict=True))
        point = _point(std, params, out[-1])
        # Standard model, no Jacobian: the posterior density in (params, mu).
        expected = float(logp_std(point)) + np.linalg.slogdet(jac)[1]
        # Flat priors and mu = (1 + c) / 2 contribute constants the two models
        # state differently; everything else must agree point by point.
        offsets.append(lz - expected)
        checked += 1
    assert checked >= 5
    assert np.ptp(offsets) < 1e-6


def test_em_reads_family_prior_from_the_model(beta_data):
    """A tight prior on alpha in the model pulls EM's alpha onto it; a flat one leaves the MLE."""
    free = am.fit_em(beta_data, "beta", mu=0.8, priors="flat")
    tight = am.fit_em(
        beta_data, "beta", mu=0.8, priors={"alpha": Prior("Normal", mu=6.0, sigma=0.01)}
    )
    # sigma 0.01 against a likelihood whose curvature in alpha is ~1/0.76^2 (NUTS sd):
    # the MAP lies within (0.01/0.76)^2 * |6 - 3| of 6.
    assert tight.params_["alpha"] == pytest.approx(6.0, abs=0.01)
    assert abs(free.params_["alpha"] - 6.0) > 1.0
    assert tight.settings["priors"]["alpha"].startswith("Normal(")
    # The result is still a stationary point of EM's own objective.
    problem = tight.problem
    grad = problem.gradient(tight.state_, problem.e_step(tight.state_))
    scale = tight.data.counts.votes_per_user().sum()
    assert np.max(np.abs(grad)) / scale < 1e-5


def test_em_reads_mu_prior_from_the_model(beta_data):
    weak = am.fit_em(beta_data, "two_point", mu_prior=(2, 2))
    strong = am.fit_em(beta_data, "two_point", mu_prior=(400, 100))
    # For two_point the scale is set by the prior alone: a prior concentrated at 0.8
    # (sd 0.018) puts mu there.
    assert strong.mu_.iloc[0] == pytest.approx(0.8, abs=0.02)
    assert abs(weak.mu_.iloc[0] - strong.mu_.iloc[0]) > 0.02
    mp = ModelPrior(strong.family, strong.mu_spec, None)
    assert mp.mu_priors[0] == BetaPrior(400.0, 100.0)


def test_flat_priors_on_request(beta_data):
    attn = build_model(beta_data, "beta", mu=0.8, likelihood=False, priors="flat")
    assert attn.priors == flat_priors(attn.family, attn.grid)
    assert attn.priors["alpha"] == Prior("Uniform", lower=0.1, upper=beta_shape_max(attn.grid))
    assert [p.name for p in attn.model.potentials] == []
    mp = ModelPrior(attn.family, attn.mu_spec, attn.grid, "flat")
    assert mp.flat
    values = [mp.family_logp({"alpha": a, "beta": b}) for a, b in [(0.5, 1.0), (3.0, 40.0)]]
    assert values[0] == pytest.approx(values[1])
    assert np.isneginf(mp.family_logp({"alpha": 0.05, "beta": 1.0}))
    assert not ModelPrior(attn.family, attn.mu_spec, attn.grid).flat


#: Points of each family's parameters at which the default priors are compared.
PRIOR_POINTS = {
    "beta": [{"alpha": 0.5, "beta": 1.0}, {"alpha": 3.0, "beta": 40.0},
             {"alpha": 6.7, "beta": 0.3}],
    "beta_mixture": [
        PARAMS["beta_mixture"],
        {"weights": np.array([0.9, 0.1]), "alpha": np.array([0.3, 30.0]),
         "beta": np.array([2.0, 0.25])},
    ],
    "logistic_normal_mixture": [
        PARAMS["logistic_normal_mixture"],
        {"weights": np.array([0.5, 0.5]), "logit_mean": np.array([-4.0, 3.0]),
         "logit_sd": np.array([0.25, 3.0])},
    ],
}  # fmt: skip


@pytest.mark.parametrize("family", list(PRIOR_POINTS))
def test_default_family_prior_is_the_models(beta_data, family):
    """EM's numpy prior of the family parameters is the PyMC model's log density.

    ``compile_logp(jacobian=False)`` of the model built without the likelihood
    (every ``mu`` known) is the prior density in the family's own parameters;
    under a mean/concentration prior EM's objective adds the documented
    ``log alpha + log beta`` (its mode is taken in ``(logit m, log kappa)``).
    """
    attn = build_model(beta_data, family, mu=0.8, likelihood=False, parameterization="standard")
    assert attn.priors == default_priors(attn.family, attn.grid)
    logp = attn.model.compile_logp(jacobian=False, mode=FAST)
    mp = ModelPrior(attn.family, attn.mu_spec, attn.grid)
    assert not mp.flat
    # PyMC's truncation normaliser of Normal(1, 2.5) on [-50, 50], whose exact log is
    # -1e-85, comes out 1.9e-9 (scipy's is exact): hence 1e-8, far below any mistake in
    # a parameterisation or a Jacobian.
    atol = 1e-8
    for params in PRIOR_POINTS[family]:
        want = float(logp(_point(attn, params, None)))
        got = attn.family.log_prior(params, attn.priors, attn.grid)
        assert got == pytest.approx(want, rel=1e-12, abs=atol)
        jac = np.sum(np.log(params["alpha"]) + np.log(params["beta"])) if "alpha" in params else 0
        assert mp.family_logp(params) == pytest.approx(want + jac, rel=1e-12, abs=atol)


def test_bad_priors_are_named(beta_data):
    with pytest.raises(ValueError, match="'gamma'.*not parameters of 'beta'"):
        build_model(beta_data, "beta", mu=0.8, priors={"gamma": Prior("Normal")})
    with pytest.raises(ValueError, match="unknown PyMC distribution 'Gama'"):
        Prior("Gama", alpha=1)
    with pytest.raises(ValueError, match="variant"):
        build_model(beta_data, "beta", mu=0.8, variant="joint")
    with pytest.raises(ValueError, match="identified parameterization needs"):
        build_model(beta_data, "beta", mu=0.8, parameterization="identified")


def test_latent_model_reads_like_the_paper(beta_data):
    attn = build_model(beta_data, "beta", mu_prior=(8, 2), variant="latent")
    names = {v.name for v in attn.model.free_RVs}
    assert names == {"alpha", "beta", "mu", "eta"}
    assert attn.model.named_vars_to_dims["eta"] == ("user",)
    assert list(attn.model.coords["user"]) == list(beta_data.users)
    assert [v.name for v in attn.model.observed_RVs] == ["s"]


@pytest.mark.parametrize("family", ["beta", "two_point", "k_point"])
def test_identified_point_maps_back(two_pair_data, family):
    """Starting points in identified coordinates reproduce the parameters they came from."""
    from attnmodel.model.identified import identified_point

    k = 3 if family == "k_point" else None
    params = PARAMS[family]
    mu = np.array([0.78, 0.66])
    attn = build_model(two_pair_data, family, mu_prior=(8, 2), n_components=k)
    z = identified_point(attn, params, mu)
    model = attn.model
    names = list(attn.family.param_names) + ["mu"]
    outs = model.replace_rvs_by_values([model[n] for n in names])
    values = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", mode=FAST)
    got = dict(zip(names, values({"identified_coords": z}), strict=True))
    np.testing.assert_allclose(got["mu"], mu, rtol=1e-9)
    for name in attn.family.param_names:
        np.testing.assert_allclose(got[name], params[name], rtol=1e-9)
    assert np.isfinite(model.compile_logp(mode=FAST)({"identified_coords": z}))


def _mass_near_eta_one(mu: dict[str, float], seed: int):
    """60 users under Beta(6, 0.3) (``P_eta`` pushed onto 1), votes on three pairs."""
    sim = am.simulate_votes(
        "beta", {"alpha": 6.0, "beta": 0.3}, 60, (5, 40), mu=mu, pairs=list(mu), seed=seed
    )
    return sim.to_data()


def test_identified_beta_coordinates_have_no_wall():
    """Every identified point of the Beta family is admissible: finite log density and gradient.

    Votes that push ``P_eta`` onto ``eta = 1`` with a pair near ``mu = 1`` put the
    posterior where the shape floor and ``mu <= 1`` meet; coordinates with an
    inadmissible region there make NUTS diverge. 300 points drawn far wider than
    the posterior (sd 2.5 around the origin) must all be admissible.
    """
    attn = build_model(
        _mass_near_eta_one({"A vs B": 0.97, "A vs C": 0.8, "B vs C": 0.7}, 4), "beta"
    )
    assert attn.parameterization == "identified"
    model = attn.model
    (z,) = model.value_vars
    logp = model.compile_logp(mode=FAST)
    dlogp = model.compile_dlogp(mode=FAST)
    rng = np.random.default_rng(0)
    size = model.initial_point()[z.name].size
    for _ in range(300):
        point = {z.name: rng.normal(0.0, 2.5, size)}
        assert np.isfinite(logp(point)), point
        assert np.all(np.isfinite(dlogp(point))), point


def test_identified_beta_mean_does_not_move_with_the_ratios():
    """The first pair's mean of ``d = eta (2 mu_1 - 1)`` is its own coordinate.

    The votes pin that mean down sharply; if its range followed the pair ratios
    (through the pair whose ``mu`` reaches 1 first), moving a ratio coordinate
    would move it, with a kink where that pair changes, and NUTS would need
    steps several times smaller.
    """
    attn = build_model(
        _mass_near_eta_one({"A vs B": 0.8, "A vs C": 0.97, "B vs C": 0.9}, 5), "beta"
    )
    model = attn.model
    (z,) = model.value_vars
    outs = model.replace_rvs_by_values([model["alpha"], model["beta"], model["mu"]])
    values = model.compile_fn(outs, inputs=[z], mode=FAST)

    def mean_d1(point):
        a, b, mu = values({z.name: point})
        return (2.0 * mu[0] - 1.0) * a / (a + b)

    rng = np.random.default_rng(1)
    n_own = attn.family.n_identified_coords
    size = model.initial_point()[z.name].size
    for _ in range(50):
        point = rng.normal(0.0, 1.5, size)
        base = mean_d1(point)
        for k in range(n_own, size):
            moved = point.copy()
            moved[k] += 0.7
            assert mean_d1(moved) == pytest.approx(base, rel=1e-10)


@pytest.mark.parametrize(
    ("family", "mode"),
    [
        ("beta", "default"),
        ("beta", "python"),
        ("two_point", "default"),
        ("beta_mixture", "default"),
    ],
)
def test_log_density_gradient_matches_finite_differences(two_pair_data, family, mode):
    """The likelihood Op's gradient (E-step sums, Fisher's identity) is the log density's.

    ``default`` runs PyTensor's compiled backend (the Op's Numba implementation),
    ``python`` its ``perform``; both against central differences of the log
    density, whose truncation error (h = 1e-5, third derivatives of order 1e3
    here) is below 1e-6 relative.
    """
    k = {"k_point": 3, "beta_mixture": 2, "logistic_normal_mixture": 2}.get(family)
    attn = build_model(
        two_pair_data, family, mu_prior=(8, 2), n_components=k, parameterization="standard"
    )
    model = attn.model
    kw = {} if mode == "default" else {"mode": FAST}
    logp = model.compile_logp(**kw)
    dlogp = model.compile_dlogp(**kw)
    point = _point(attn, PARAMS[family], np.array([0.78, 0.66]))
    grad = np.asarray(dlogp(point))
    names = [v.name for v in model.value_vars]
    fd = []
    for name in names:
        flat = np.atleast_1d(point[name]).astype(float)
        for i in range(flat.size):
            h = 1e-5
            up, down = dict(point), dict(point)
            x = flat.copy()
            x[i] += h
            up[name] = x.reshape(np.shape(point[name]))
            x = flat.copy()
            x[i] -= h
            down[name] = x.reshape(np.shape(point[name]))
            fd.append((logp(up) - logp(down)) / (2 * h))
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
