"""Per-user posteriors: checked against scipy quadrature and hand-made Bayes rule.

Continuous summaries are compared with the exact posterior of each user at the
*fitted* parameters, integrated by ``scipy.integrate.quad`` in logit space
(where the posterior is smooth and unimodal) after subtracting the log density
at the mode, so that no user, however many votes it has, underflows.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

from attnmodel import fit_em, simulate_counts, user_posterior
from attnmodel.data.votes import VoteData

BETA_TRUTH = {"alpha": 3.0, "beta": 5.0}


# ---------------------------------------------------------------------------
# Exact posterior of one user, by quadrature
# ---------------------------------------------------------------------------


def _log_lik(eta, one_minus_eta, n, s, mu):
    """log prod_k g_k^s_k (1 - g_k)^(n_k - s_k), g_k = 1/2 + eta (mu_k - 1/2).

    ``g`` and ``1 - g`` are formed as ``(1 - eta)/2 + eta mu`` and
    ``(1 - eta)/2 + eta (1 - mu)`` so that neither loses digits near eta = 1.
    """
    total = 0.0
    for nk, sk, mk in zip(n, s, mu, strict=True):
        if sk:
            total = total + sk * np.log(0.5 * one_minus_eta + eta * mk)
        if nk - sk:
            total = total + (nk - sk) * np.log(0.5 * one_minus_eta + eta * (1.0 - mk))
    return total


def _beta_log_prior_u(params):
    """Log density of u = logit(eta) when eta ~ Beta(alpha, beta) (Jacobian eta (1 - eta) included).

    Checked once against scipy.stats below; the closed form keeps quad's many
    scalar calls cheap.
    """
    a, b = params["alpha"], params["beta"]
    const = special.betaln(a, b)
    u0 = np.array([-3.0, 0.2, 4.0])
    ref = stats.beta.logpdf(special.expit(u0), a, b) + np.log(
        special.expit(u0) * special.expit(-u0)
    )
    np.testing.assert_allclose(
        a * special.log_expit(u0) + b * special.log_expit(-u0) - const, ref, rtol=1e-12
    )
    return lambda u: a * special.log_expit(u) + b * special.log_expit(-u) - const


def _log_prior_u(family, params):
    """Log density of u = logit(eta) for the continuous families, in closed form.

    The mixtures' closed forms are checked once against scipy.stats at a few
    points; quad calls them about 10^4 times with scalars, where scipy.stats'
    ``logpdf`` and ``logsumexp`` cost ten times the arithmetic.
    """
    if family.name == "beta":
        return _beta_log_prior_u(params)
    u0 = np.array([-3.0, 0.2, 4.0])[:, None]
    if family.name == "beta_mixture":
        w, a, b = (np.asarray(params[k], dtype=float) for k in ("weights", "alpha", "beta"))
        const = np.log(w) - special.betaln(a, b)

        def comp(u):
            u = np.asarray(u, dtype=float)[..., None]
            return const + a * special.log_expit(u) + b * special.log_expit(-u)

        ref = (
            np.log(w)
            + stats.beta.logpdf(special.expit(u0), a, b)
            + np.log(special.expit(u0) * special.expit(-u0))
        )
    elif family.name == "logistic_normal_mixture":
        w, m, sd = (
            np.asarray(params[k], dtype=float) for k in ("weights", "logit_mean", "logit_sd")
        )
        const = np.log(w) - np.log(sd) - 0.5 * np.log(2.0 * np.pi)

        def comp(u):
            z = (np.asarray(u, dtype=float)[..., None] - m) / sd
            return const - 0.5 * z * z

        ref = np.log(w) + stats.norm.logpdf(u0, m, sd)
    else:
        raise AssertionError(family.name)
    np.testing.assert_allclose(comp(u0[:, 0]), ref, rtol=1e-12)
    return lambda u: np.logaddexp.reduce(comp(u), axis=-1)


class ExactPosterior:
    """Posterior of one user's eta, integrated in u = logit(eta) with scipy.

    ``log_f(u)`` is the log posterior density of ``u`` minus its value at the
    mode; every integral is split at the mode and at the mode +- 1, 4, 16, 64
    posterior widths so that quad never has to find a narrow peak by itself.
    The support is cut at |u| = 100 like the package's grid (the Beta tails
    beyond hold less than exp(-100 * min(alpha, beta)) of the mass).
    """

    U_MAX = 100.0

    def __init__(self, n, s, mu, log_prior_u):
        self.n, self.s, self.mu = list(n), list(s), list(mu)
        self.log_prior_u = log_prior_u
        # Mode in u: fine scan, then Brent inside the best cell.
        grid = np.linspace(-60.0, 60.0, 240001)
        k = int(np.argmax(self._raw(grid)))
        res = optimize.minimize_scalar(
            lambda u: -self._raw(u),
            bounds=(grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]),
            method="bounded",
            options={"xatol": 1e-12},
        )
        self.u_mode = float(res.x)
        self.peak = float(self._raw(self.u_mode))
        d = 1e-4
        curv = (self._raw(self.u_mode + d) - 2 * self.peak + self._raw(self.u_mode - d)) / d**2
        self.width = float(1.0 / np.sqrt(max(-curv, 1e-6)))
        self.breaks = np.clip(
            self.u_mode + self.width * np.array([-64, -16, -4, -1, 0, 1, 4, 16, 64.0]),
            -self.U_MAX,
            self.U_MAX,
        )
        self.z = self.integral(lambda u: 1.0)
        self._mean = None

    def _raw(self, u):
        eta, om = special.expit(u), special.expit(-u)
        return _log_lik(eta, om, self.n, self.s, self.mu) + self.log_prior_u(u)

    def log_f(self, u):
        """Log posterior density of u (unnormalised, 0 at the mode)."""
        return self._raw(u) - self.peak

    def integral(self, g, lo=-U_MAX, hi=U_MAX):
        """``int_lo^hi g(u) exp(log_f(u)) du``.

        The integrand is at most 1 (at the mode) and the posterior is about
        ``width`` wide, so an absolute error of 1e-14 * width is 1e-14 of the
        total; asking quad for 1e-12 relative on far-tail pieces that hold
        1e-30 of the mass would only make it warn about roundoff.
        """
        pts = np.unique(
            np.concatenate([[lo, hi], self.breaks[(self.breaks > lo) & (self.breaks < hi)]])
        )
        total = 0.0
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            val, _ = integrate.quad(
                lambda u: g(u) * np.exp(self.log_f(u)),
                a,
                b,
                epsabs=1e-14 * self.width,
                epsrel=1e-12,
                limit=200,
            )
            total += val
        return total

    def mean(self):
        if self._mean is None:
            self._mean = self.integral(special.expit) / self.z
        return self._mean

    def sd(self):
        m = self.mean()
        return np.sqrt(self.integral(lambda u: (special.expit(u) - m) ** 2) / self.z)

    def prob_above(self, eta_star):
        return self.integral(lambda u: 1.0, lo=special.logit(eta_star)) / self.z

    def mass(self, eta_lo, eta_hi):
        lo = special.logit(eta_lo) if eta_lo > 0 else -self.U_MAX
        hi = special.logit(eta_hi) if eta_hi < 1 else self.U_MAX
        return (
            self.integral(lambda u: 1.0, lo=max(lo, -self.U_MAX), hi=min(hi, self.U_MAX)) / self.z
        )

    def log_density_eta(self, eta):
        """Log posterior density of eta (not u), up to the same constant."""
        u = special.logit(eta)
        return self.log_f(u) - np.log(eta) - np.log1p(-eta)

    def eta_quantile(self, q):
        """Quantile in eta, by brentq on the quad CDF (split at the mode)."""
        below_mode = self.integral(lambda u: 1.0, hi=self.u_mode) / self.z

        def cdf(u):
            part = integrate.quad(
                lambda x: np.exp(self.log_f(x)),
                self.u_mode,
                u,
                epsabs=1e-14 * self.width,
                epsrel=1e-12,
                limit=200,
            )[0]
            return below_mode + part / self.z - q

        lo, hi = self.u_mode - 64 * self.width, self.u_mode + 64 * self.width
        return float(special.expit(optimize.brentq(cdf, lo, hi, xtol=1e-12)))

    def map_eta(self):
        """Mode of the eta density (it differs from the u mode by the Jacobian)."""
        grid = np.linspace(self.u_mode - 20 * self.width, self.u_mode + 20 * self.width, 40001)
        k = int(np.argmax(self.log_density_eta(special.expit(grid))))
        res = optimize.minimize_scalar(
            lambda u: -self.log_density_eta(special.expit(u)),
            bounds=(grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]),
            method="bounded",
            options={"xatol": 1e-12},
        )
        return float(special.expit(res.x))


# ---------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------

# Extreme users appended to each simulated data set, as (n, s): every vote for
# the stronger model, none, a single vote either way, two votes split, and for
# mu = 0.99 thousands of votes (likelihoods of order 0.5^2000, far below the
# smallest double).
EXTREME = {
    0.8: [(40, 40), (40, 0), (1, 1), (1, 0), (2, 1), (60, 30)],
    0.99: [(2000, 2000), (2000, 0), (2000, 1000), (2000, 1990), (1, 1), (1, 0)],
}
SIM = {
    0.8: dict(n_users=200, n_votes=(5, 60), seed=31),
    0.99: dict(n_users=150, n_votes=(100, 2000), seed=32),
}
N_SIM_CHECKED = 4  # simulated users compared with quad, besides the extreme ones


@functools.cache
def _beta_case(mu):
    n, s, _ = simulate_counts("beta", BETA_TRUTH, mu=mu, **SIM[mu])
    ext_n, ext_s = np.array(EXTREME[mu]).T
    n, s = np.concatenate([n, ext_n]), np.concatenate([s, ext_s])
    data = VoteData.from_counts(n, s)
    res = fit_em(data, "beta", mu=mu, n_init=2, seed=1)
    assert res.converged_
    checked = list(range(N_SIM_CHECKED)) + list(range(n.size - ext_n.size, n.size))
    prior = _beta_log_prior_u(res.params_)
    exact = {j: ExactPosterior([n[j]], [s[j]], [mu], prior) for j in checked}
    return res, exact


@pytest.fixture(scope="module", params=[0.8, 0.99], ids=["mu0.8", "mu0.99"])
def beta_case(request):
    return _beta_case(request.param)


@pytest.fixture(scope="module")
def beta_post(beta_case):
    res, _ = beta_case
    return {es: res.posterior(eta_star=es, hdi_prob=0.94) for es in (0.5, 0.7)}


# ---------------------------------------------------------------------------
# Continuous family: against quadrature
# ---------------------------------------------------------------------------


def test_mean_and_sd_match_quadrature(beta_case, beta_post):
    # The grid spacing is chosen so that the trapezoid rule's relative error is
    # below 1e-7 for every user (grid.default_spacing); quad adds ~1e-12.
    res, exact = beta_case
    post = beta_post[0.5]
    for j, ex in exact.items():
        p = post.isel(user=j)
        assert float(p.eta_mean) == pytest.approx(ex.mean(), abs=1e-7), j
        assert float(p.eta_sd) == pytest.approx(ex.sd(), abs=1e-7), j


@pytest.mark.parametrize("eta_star", [0.5, 0.7])
def test_p_above_matches_quadrature(beta_case, beta_post, eta_star):
    # The CDF integrates a cubic spline of the log density through the nodes:
    # interpolation error ~ (5/384) h^4 |d^4 log f / du^4|, tiny for these smooth,
    # near-Gaussian posteriors, plus the ~1e-7 error of the node masses. 1e-6 leaves
    # a margin of 10 over what we see; a CDF taking the density as constant within
    # each cell is off by up to h^2/8 * max f' and fails (4e-4 at mu = 0.8 and 3e-3
    # at mu = 0.99 on these users, 1e-2 for others with thousands of votes, where
    # the grid spacing is close to the posterior's width).
    res, exact = beta_case
    post = beta_post[eta_star]
    assert post.attrs["eta_star"] == eta_star
    for j, ex in exact.items():
        assert float(post.p_above[j]) == pytest.approx(ex.prob_above(eta_star), abs=1e-6), j


def test_map_matches_optimiser(beta_case, beta_post):
    # Both are golden-section/Brent searches on the same exact log density; the
    # maximiser of a smooth peak is only determined to ~sqrt(machine eps) relative,
    # ~1e-8 here, hence 1e-6.
    res, exact = beta_case
    post = beta_post[0.5]
    for j, ex in exact.items():
        assert float(post.eta_map[j]) == pytest.approx(ex.map_eta(), abs=1e-6), j


def test_hdi_holds_its_mass_and_is_the_shortest(beta_case, beta_post):
    res, exact = beta_case
    post = beta_post[0.5]
    hdi_prob = post.attrs["hdi_prob"]
    for j, ex in exact.items():
        lo, hi = (float(v) for v in post.eta_hdi[j].values)
        assert 0.0 <= lo < hi <= 1.0, j
        # Mass inside: same accuracy argument as p_above (two CDF values), 1e-6.
        assert ex.mass(lo, hi) == pytest.approx(hdi_prob, abs=1e-6), j
        # Shortest interval: the eta-density is equal at both ends (unimodal
        # posterior). The ends come from a golden-section search on the width,
        # which is flat at its minimum, so they are found to ~1e-8 in probability;
        # 1e-3 in log density leaves a wide margin and still fails an interval
        # taken from a piecewise-constant density (off by 0.14-0.36 here).
        assert ex.log_density_eta(lo) == pytest.approx(ex.log_density_eta(hi), abs=1e-3), j
        # Hence no longer than the equal-tailed interval of the same mass.
        et_lo, et_hi = ex.eta_quantile((1 - hdi_prob) / 2), ex.eta_quantile((1 + hdi_prob) / 2)
        assert hi - lo <= et_hi - et_lo + 1e-9, j


def test_extreme_users_give_finite_summaries_in_range(beta_case, beta_post):
    res, _ = beta_case
    for post in beta_post.values():
        for name in ("eta_mean", "eta_map", "p_above", "eta_hdi"):
            v = post[name].to_numpy()
            assert np.all(np.isfinite(v)), name
            assert np.all((v >= 0) & (v <= 1)), name
        sd = post.eta_sd.to_numpy()
        assert np.all(np.isfinite(sd)) and np.all((sd >= 0) & (sd <= 0.5))
        lo, hi = post.eta_hdi.sel(ci_bound="lower"), post.eta_hdi.sel(ci_bound="upper")
        assert np.all(lo <= post.eta_map + 1e-12) and np.all(post.eta_map <= hi + 1e-12)
        assert np.all(lo <= hi)


def test_extreme_users_are_ordered_sensibly():
    # At mu = 0.99, 2000 of 2000 votes for the stronger model leave no doubt about
    # attentiveness, 1000 or 0 of 2000 none about inattention (the likelihood ratios
    # are exp(hundreds)); a single vote barely moves the fitted prior.
    res, _ = _beta_case(0.99)
    post = res.posterior(eta_star=0.5)
    n_ext = len(EXTREME[0.99])
    p = dict(zip(EXTREME[0.99], post.p_above.to_numpy()[-n_ext:], strict=True))
    assert p[(2000, 2000)] > 1 - 1e-9
    assert p[(2000, 1000)] < 1e-9
    assert p[(2000, 0)] < 1e-9
    prior_tail = 1 - stats.beta.cdf(0.5, res.params_["alpha"], res.params_["beta"])
    assert p[(1, 0)] < prior_tail < p[(1, 1)]
    assert p[(1, 1)] - p[(1, 0)] < 0.2


@pytest.mark.parametrize(
    ("family", "truth"),
    [
        ("beta_mixture", {"weights": [0.6, 0.4], "alpha": [4.0, 16.0], "beta": [16.0, 4.0]}),
        (
            "logistic_normal_mixture",
            {"weights": [0.5, 0.5], "logit_mean": [-1.0, 1.5], "logit_sd": [0.6, 0.5]},
        ),
    ],
)
def test_mixture_posteriors_match_quadrature(family, truth):
    # Mean and sd as for beta. p_above: the fitted logistic-normal components may be
    # as narrow as two grid spacings (families.logit_sd_min), where the mixture's
    # log density bends on the scale of 2h and the spline's O(h^4 |d^4 log f|)
    # error grows to ~1e-5 near the bend (6e-6 seen); 5e-5 stays far below the
    # piecewise-constant CDF's ~1e-3. The prior density comes from scipy.
    gen = "beta_mixture" if family == "beta_mixture" else "logistic_normal_mixture"
    n, s, _ = simulate_counts(gen, truth, 300, (10, 80), 0.8, seed=41)
    data = VoteData.from_counts(n, s)
    res = fit_em(data, family, n_components=2, mu=0.8, n_init=2, seed=2)
    assert res.converged_
    post = res.posterior(eta_star=0.6)
    prior = _log_prior_u(res.family, res.params_)
    for j in range(5):
        ex = ExactPosterior([n[j]], [s[j]], [0.8], prior)
        p = post.isel(user=j)
        assert float(p.eta_mean) == pytest.approx(ex.mean(), abs=1e-7), j
        assert float(p.eta_sd) == pytest.approx(ex.sd(), abs=1e-7), j
        assert float(p.p_above) == pytest.approx(ex.prob_above(0.6), abs=5e-5), j


# ---------------------------------------------------------------------------
# Discrete families: Bayes rule by hand
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["two_point", "k_point"])
def discrete_case(request, multi_pair_sim):
    if request.param == "two_point":
        # Three pairs, mu unknown (default prior): the hand computation must use
        # the fitted mu of each pair.
        data = multi_pair_sim.to_data()
        res = fit_em(data, "two_point", n_init=2, seed=3)
    else:
        n, s, _ = simulate_counts(
            "k_point",
            {"weights": [0.3, 0.4, 0.3], "locations": [0.1, 0.5, 0.95]},
            600,
            (20, 100),
            0.8,
            seed=7,
        )
        data = VoteData.from_counts(n, s)
        res = fit_em(data, "k_point", n_components=3, mu=0.8, n_init=2, seed=3)
    assert res.converged_
    return res


def _hand_membership(res):
    w, loc = res.family.components(res.params_)
    n, s = res.data.user_counts()
    mu = res.mu_.reindex(n.columns).to_numpy()
    ll = np.zeros((n.shape[0], loc.size))
    for k in range(loc.size):
        g = 0.5 + loc[k] * (mu - 0.5)
        with np.errstate(divide="ignore"):
            log_g, log_h = np.log(g), np.log(1.0 - g)
        ll[:, k] = (
            np.where(s > 0, s * log_g, 0.0) + np.where(n - s > 0, (n - s) * log_h, 0.0)
        ).sum(axis=1)
    with np.errstate(divide="ignore"):
        a = ll + np.log(w)
    return np.exp(a - special.logsumexp(a, axis=1, keepdims=True)), w, loc


def test_discrete_membership_is_bayes_rule(discrete_case):
    res = discrete_case
    post = res.posterior(eta_star=0.5)
    member = post.membership.to_numpy()
    # Normalised by a log-sum-exp each: only rounding separates the two.
    np.testing.assert_allclose(member.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    hand, w, loc = _hand_membership(res)
    np.testing.assert_allclose(member, hand, rtol=0, atol=1e-10)
    np.testing.assert_allclose(post.eta_mean, hand @ loc, rtol=0, atol=1e-10)
    sd = np.sqrt(np.maximum(hand @ loc**2 - (hand @ loc) ** 2, 0))
    np.testing.assert_allclose(post.eta_sd, sd, rtol=0, atol=1e-7)
    assert list(post.component.values) == list(range(loc.size))


@pytest.mark.parametrize("eta_star", [0.3, 0.5, 0.9])
def test_discrete_summaries_are_exact(discrete_case, eta_star):
    res = discrete_case
    post = res.posterior(eta_star=eta_star, hdi_prob=0.9)
    member = post.membership.to_numpy()
    _, loc = res.family.components(res.params_)
    for name in ("eta_mean", "p_above", "eta_map", "eta_hdi"):
        v = post[name].to_numpy()
        assert np.all((v >= 0) & (v <= 1)), name
    # p_above is the membership of the atoms at or above eta_star.
    np.testing.assert_allclose(
        post.p_above, member[:, loc >= eta_star].sum(axis=1), rtol=0, atol=1e-12
    )
    # MAP: the most probable atom.
    np.testing.assert_array_equal(post.eta_map, loc[np.argmax(member, axis=1)])
    # HDI bounds are atoms: the extremes of the fewest most probable atoms holding 0.9.
    hdi = post.eta_hdi.to_numpy()
    assert np.all(np.isin(hdi, loc))
    for i in range(member.shape[0]):
        order = np.argsort(-member[i], kind="stable")
        k = int(np.searchsorted(np.cumsum(member[i, order]), 0.9 - 1e-12)) + 1
        chosen = loc[order[:k]]
        assert hdi[i, 0] == chosen.min() and hdi[i, 1] == chosen.max(), i
        assert member[i, (loc >= hdi[i, 0]) & (loc <= hdi[i, 1])].sum() >= 0.9 - 1e-12


# ---------------------------------------------------------------------------
# Bookkeeping: users, rows, arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["beta", "two_point"])
def test_users_with_identical_counts_share_summaries_in_input_order(family):
    n = np.array([[5, 0], [3, 2], [5, 0], [1, 1], [3, 2], [5, 0], [7, 7]])
    s = np.array([[4, 0], [1, 2], [4, 0], [0, 1], [1, 2], [4, 0], [5, 3]])
    users = ["zoe", "adam", "mia", 17, "bob", "ann", "cy"]
    data = VoteData.from_counts(n, s, users=users)
    assert data.counts.n_rows == 4
    res = fit_em(data, family, mu=0.8, n_init=1)
    post = user_posterior(res, eta_star=0.6)
    assert list(post.user.values) == users
    np.testing.assert_array_equal(post.n_votes, data.votes_per_user().to_numpy())
    np.testing.assert_array_equal(post.n_votes, n.sum(axis=1))
    for group in (["zoe", "mia", "ann"], ["adam", "bob"]):
        sub = post.sel(user=group)
        for name in ("eta_mean", "eta_sd", "eta_map", "eta_hdi", "p_above"):
            v = sub[name].to_numpy()
            assert np.array_equal(v, np.broadcast_to(v[:1], v.shape)), (name, group)
    if family == "beta":
        # Different counts, different posteriors (seven users may well collapse
        # the two-point fit onto one atom, which makes everyone alike).
        assert post.eta_mean.sel(user="zoe") != post.eta_mean.sel(user="cy")
    # The method and the function agree.
    assert res.posterior(eta_star=0.6).equals(post)


def test_output_follows_the_input_user_order_from_a_frame(multi_pair_sim):
    votes = multi_pair_sim.votes.iloc[::-1].reset_index(drop=True)  # reversed first appearances
    data = VoteData.from_frame(votes)
    res = fit_em(data, "beta", n_init=1)
    post = res.posterior()
    first_seen = pd.unique(votes["user"])
    assert list(post.user.values) == list(first_seen)
    assert list(post.user.values) == list(data.users)
    per_user = votes.groupby("user").size()
    np.testing.assert_array_equal(post.n_votes, per_user.reindex(first_seen).to_numpy())
    np.testing.assert_array_equal(post.n_votes, data.votes_per_user().to_numpy())
    assert post.eta_hdi.dims == ("user", "ci_bound")
    assert list(post.ci_bound.values) == ["lower", "upper"]
    assert "membership" not in post


@pytest.mark.parametrize("case", ["beta", "two_point", "beta_ties"])
def test_summaries_in_blocks_equal_those_of_the_whole_matrix(case, monkeypatch, multi_pair_sim):
    """A table too large for one posterior matrix is summarised a block of rows at a time.

    The blocks' posteriors are recomputed at the fitted state; each row's
    summaries must be those of the whole matrix, in the same row order. Blocks
    of 7 rows (not a divisor of the row count) leave a short last block.
    """
    import attnmodel.posterior.users as users_mod
    from attnmodel.model.simulate import simulate_tie_counts

    if case == "beta_ties":
        rng = np.random.default_rng(3)
        n, s, t = simulate_tie_counts(
            rng.beta(3.0, 2.0, 60), (2.0, 5.0), 0.6, (3, 12), [0.8, 0.7], seed=4
        )
        data = VoteData.from_counts(n, s, t=t)
    else:
        data = VoteData.from_frame(multi_pair_sim.votes)
    res = fit_em(data, case.removesuffix("_ties"), n_init=1, warn=False)
    whole = users_mod.row_summaries(res, eta_star=0.6)
    nodes = res.problem.grid.size if res.problem.grid is not None else 2
    monkeypatch.setattr(users_mod, "SUMMARY_CELLS", 7 * nodes)
    assert data.counts.n_rows > 7 and data.counts.n_rows % 7
    blocks = users_mod.row_summaries(res, eta_star=0.6)
    assert set(blocks) == set(whole)
    for key in whole:
        # Same rows, same arithmetic up to the E-step's summation order.
        np.testing.assert_allclose(blocks[key], whole[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_draws_in_blocks_follow_each_users_posterior(monkeypatch, multi_pair_sim):
    """Draws from a table summarised in blocks of 7 rows land on each user's own posterior.

    The blocks use the random stream in another order than one matrix would,
    so the check is statistical: every user's mean of 400 draws against its
    posterior mean, within 5 standard errors (sd / sqrt(400)) plus 1e-3 for
    the grid's interpolation; a user given another row's draws misses by many.
    """
    import attnmodel.posterior.users as users_mod

    data = VoteData.from_frame(multi_pair_sim.votes)
    res = fit_em(data, "beta", n_init=1, warn=False)
    exact = users_mod.row_summaries(res, eta_star=0.6)
    monkeypatch.setattr(users_mod, "SUMMARY_CELLS", 7 * res.problem.grid.size)
    draws = users_mod.draw_eta(res, 400, seed=1)
    rows = data.counts.user_row
    err = np.abs(draws.mean(axis=0) - exact["eta_mean"][rows])
    assert np.all(err < 5 * exact["eta_sd"][rows] / np.sqrt(400) + 1e-3)
    # The test's power: another row's posterior is far off for most users.
    shifted = exact["eta_mean"][(rows + 1) % data.counts.n_rows]
    assert np.mean(np.abs(draws.mean(axis=0) - shifted) > 5 * exact["eta_sd"][rows] / 20) > 0.3


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, np.nan])
def test_invalid_arguments_raise(bad):
    res, _ = _beta_case(0.8)
    with pytest.raises(ValueError, match="eta_star"):
        res.posterior(eta_star=bad)
    with pytest.raises(ValueError, match="hdi_prob"):
        user_posterior(res, hdi_prob=bad)


# ---------------------------------------------------------------------------
# Monte Carlo standard error of Rao-Blackwellised averages (NUTS p_above)
# ---------------------------------------------------------------------------


def _ar1_tails(n_rep, phi, cut, seed, chains=4, draws=1000):
    """Per-draw tails of ``n_rep`` independent replicate runs, shape (chain, draw, n_rep).

    A stationary AR(1) latent with coefficient ``phi``; the tail is 0 while the
    latent is above ``cut`` (rare, clumped excursions) and near 1 otherwise.
    """
    rng = np.random.default_rng(seed)
    x = np.empty((chains, draws, n_rep))
    x[:, 0] = rng.standard_normal((chains, n_rep))
    noise = rng.standard_normal((chains, draws, n_rep)) * np.sqrt(1.0 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    near_one = 0.999 + 0.001 * rng.uniform(size=x.shape)
    return np.where(x > cut, 0.0, near_one)


# Replicates per case: the sd of their means (the true MCSE) has a relative
# sampling error of 1 / sqrt(2 (R - 1)) = 0.016, so 3 of them allow 0.05.
N_REP = 2000


@pytest.mark.parametrize(
    "phi, cut, upper",
    [
        (0.95, 2.33, 1.5),  # rare clumps: 1% of draws, excursions of several draws
        (0.5, 0.0, 1.2),  # an ordinary tail, half the draws at 0
    ],
)
def test_mean_mcse_is_honest_for_rare_clumps(phi, cut, upper):
    from attnmodel.posterior.draws import attentiveness_from_draws, mean_mcse

    tails = _ar1_tails(N_REP, phi, cut, seed=20261201)
    true_mcse = tails.mean(axis=(0, 1)).std(ddof=1)
    reported = mean_mcse(tails)
    ratio = np.median(reported) / true_mcse
    # Not below the true MCSE by more than 3 sampling errors of it (ArviZ's MCSE
    # of the mean alone gives 0.84 for the rare clumps, 0.98 for the ordinary
    # tail), nor needlessly wide (1.25 and 1.05 here).
    assert 1.0 - 3.0 / np.sqrt(2.0 * (N_REP - 1)) <= ratio <= upper, ratio
    # The attentiveness group reports exactly this MCSE, one row per replicate.
    few = tails[:, :, :5]
    chains, draws = np.arange(few.shape[0]), np.arange(few.shape[1])
    flat = np.zeros(few.shape[:2])
    summ = {"mean": few, "second": few**2, "tail": few, "eta_row": few, "log_above": few,
            "log_below": few, "prior_log_above": flat, "prior_log_below": flat}  # fmt: skip
    att = attentiveness_from_draws(
        summ,
        user_row=np.arange(5),
        users=np.arange(5),
        n_votes=np.ones(5),
        chains=chains,
        draws=draws,
        eta_star=0.5,
        hdi_prob=0.9,
        thin=1,
    )
    np.testing.assert_allclose(att["p_above_mcse"].values, mean_mcse(few))


def test_mean_mcse_is_zero_for_a_constant():
    from attnmodel.posterior.draws import mean_mcse

    x = np.ones((4, 100, 3))
    x[..., 2] = np.linspace(0, 1, 400).reshape(4, 100)
    out = mean_mcse(x)
    assert out[0] == out[1] == 0.0
    assert out[2] > 0.0
