"""The compiled tie likelihood of NUTS (ops.MarginalVotesTies, ties.tie_pass) against dense forms.

* :func:`attnmodel.model.ties.tie_pass` (Horner's rule in ``c / (1 - c)``,
  with a log-sum-exp where the sum would underflow) against the log-sum-exp
  over every term written with scipy, and its weighted sums against the terms'
  shares (softmax) summed with numpy.
* The PyMC model's log density and gradient against the dense PyTensor graph
  the model was first written as (a log-sum-exp over (rows x nodes) and over
  (keys x ties x nodes) tensors, PyTensor's own gradient), at random points,
  to 1e-10 relative.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import special

from attnmodel.data.votes import VoteData
from attnmodel.model import pymc_ties
from attnmodel.model.pymc_model import build_model
from attnmodel.model.simulate import simulate_tie_counts
from attnmodel.model.ties import HORNER_TINY, TIE_PRIORS, TieTerm, tie_pass


def _terms_reference(m, T, a, b, log_c, log_1mc):
    """Every term ``log C(T,k) + log B(a+k, b+m) - log B(a,b) + (k+m) log c + (T-k) log(1-c)``.

    Returns a list (one per key) of arrays (T + 1, G).
    """
    out = []
    for m_d, t_d in zip(m, T, strict=True):
        k = np.arange(t_d + 1)[:, None]
        base = (
            special.gammaln(t_d + 1)
            - special.gammaln(k + 1)
            - special.gammaln(t_d - k + 1)
            + special.betaln(a + k, b + m_d)
            - special.betaln(a, b)
        )
        with np.errstate(invalid="ignore"):
            tail = np.where(t_d - k > 0, (t_d - k) * log_1mc[None, :], 0.0)
        out.append(base + (k + m_d) * log_c[None, :] + tail)
    return out


def _run_pass(term, a, b, log_c, log_1mc, weight, ratio):
    lay = term.terms()
    base = lay["log_binom"] + special.betaln(a + lay["k"], b + lay["m"]) - special.betaln(a, b)
    n_nodes = log_c.size
    out = np.empty((term.n_keys, n_nodes))
    pw, pr = np.zeros(base.size), np.zeros(base.size)
    pn, p1 = np.zeros(n_nodes), np.zeros(n_nodes)
    tie_pass(lay["start"], base, lay["kpm"], lay["tmk"], log_c[None, :].copy(),
             log_1mc[None, :].copy(), weight, ratio, out, pw, pr, pn, p1)  # fmt: skip
    return out, pw, pr, pn, p1


@pytest.mark.parametrize(
    "a, b, kappa",
    [(2.0, 3.0, 0.3), (0.05, 40.0, 0.999), (300.0, 1e-3, 1e-6), (1e-4, 1e-4, 0.5)],
)
def test_tie_pass_equals_the_log_sum_exp_over_terms(a, b, kappa):
    m = np.array([0, 3, 12, 0, 7, 40])
    T = np.array([5, 0, 12, 30, 1, 25])
    term = TieTerm(m, T)
    u = np.linspace(-60.0, 60.0, 241)
    om = special.expit(-u)
    c = 1.0 - om * kappa
    log_c, log_1mc = np.log(c), np.log(om) + np.log(kappa)
    rng = np.random.default_rng(0)
    weight = rng.uniform(0.0, 3.0, size=(term.n_keys, u.size))
    weight[:, ::7] = 0.0
    ratio = om / c
    out, pw, pr, pn, p1 = _run_pass(term, a, b, log_c, log_1mc, weight, ratio)
    refs = _terms_reference(term.m, term.T, a, b, log_c, log_1mc)
    lay = term.terms()
    want_pw, want_pr = np.zeros_like(pw), np.zeros_like(pr)
    want_pn, want_p1 = np.zeros_like(pn), np.zeros_like(p1)
    for d, terms in enumerate(refs):
        lse = special.logsumexp(terms, axis=0)
        np.testing.assert_allclose(out[d], lse, rtol=1e-12, atol=1e-12)
        share = np.exp(terms - lse) * weight[d]
        j = slice(lay["start"][d], lay["start"][d + 1])
        want_pw[j] = share.sum(axis=1)
        want_pr[j] = share @ ratio
        want_pn += lay["kpm"][j] @ share
        want_p1 += lay["tmk"][j] @ share
    for got, want in ((pw, want_pw), (pr, want_pr), (pn, want_pn), (p1, want_p1)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13 * np.abs(want).max())


def test_tie_pass_falls_back_where_the_horner_sum_underflows():
    # a tiny and b huge make the high-k weights vanish (w_k / w_0 ~ (a / b)^k);
    # at c near 1 those terms dominate, so the Horner sum in (1 - c) / c underflows.
    m, T = np.array([0]), np.array([200])
    term = TieTerm(m, T)
    a, b, kappa = 1e-300, 1e6, 1e-12
    om = np.array([0.5, 1e-3, 1e-9])
    c = 1.0 - om * kappa
    log_c, log_1mc = np.log(c), np.log(om) + np.log(kappa)
    lay = term.terms()
    base = lay["log_binom"] + special.betaln(a + lay["k"], b + lay["m"]) - special.betaln(a, b)
    coef = np.exp(base - base.max())
    y = np.exp(log_1mc - log_c)
    horner = np.array([np.polyval(coef, yg) for yg in y])  # sum_k coef_k y^(T - k)
    assert np.any(horner <= HORNER_TINY)  # the case the fallback serves
    weight = np.ones((1, om.size))
    out, pw, _, pn, p1 = _run_pass(term, a, b, log_c, log_1mc, weight, om / c)
    ref = _terms_reference(term.m, term.T, a, b, log_c, log_1mc)[0]
    lse = special.logsumexp(ref, axis=0)
    np.testing.assert_allclose(out[0], lse, rtol=1e-12)
    share = np.exp(ref - lse)
    np.testing.assert_allclose(pn, lay["kpm"] @ share, rtol=1e-11)
    np.testing.assert_allclose(p1, lay["tmk"] @ share, rtol=1e-11, atol=1e-300)


def _dense_tie_potential(fam, params, mu_t, counts, grid) -> None:
    """The model's first tie likelihood: dense PyTensor tensors, PyTensor's own gradient."""
    kappa = pm.Beta("kappa", *TIE_PRIORS["kappa"][1])
    tau_mean = pm.Beta("tau_mean", *TIE_PRIORS["tau_mean"][1])
    loc, scale = TIE_PRIORS["tau_conc"][1]
    tau_conc = pm.LogNormal("tau_conc", mu=loc, sigma=scale)
    a = tau_mean * tau_conc
    b = (1.0 - tau_mean) * tau_conc

    def betaln(x, y):
        return pt.gammaln(x) + pt.gammaln(y) - pt.gammaln(x + y)

    eta = pt.as_tensor_variable(grid.eta)
    om = pt.as_tensor_variable(grid.one_minus_eta)
    c = 1.0 - om * kappa
    d_eta, d_om = eta / c, om * (1.0 - kappa) / c
    m = mu_t[:, None]
    log_g = pt.log(0.5 * d_om[None, :] + d_eta[None, :] * m)
    log_1mg = pt.log(0.5 * d_om[None, :] + d_eta[None, :] * (1.0 - m))
    s_rows = np.zeros((counts.n_rows, counts.n_pairs))
    f_rows = np.zeros((counts.n_rows, counts.n_pairs))
    s_rows[counts.entry_row, counts.entry_pair] = counts.entry_s
    f_rows[counts.entry_row, counts.entry_pair] = counts.entry_n - counts.entry_s
    direction = pt.dot(s_rows, log_g) + pt.dot(f_rows, log_1mg)
    m_r, t_r = counts.row_totals()
    keys, row_key = np.unique(np.stack([m_r, t_r], axis=1), axis=0, return_inverse=True)
    m_k, t_k = keys[:, 0], keys[:, 1]
    k = np.arange(int(t_k.max()) + 1)[None, :]
    valid = k <= t_k[:, None]
    kk = np.where(valid, k, 0).astype(float)
    t_d, m_d = t_k[:, None].astype(float), m_k[:, None].astype(float)
    lg = special.gammaln
    log_binom = np.where(valid, lg(t_d + 1) - lg(kk + 1) - lg(np.maximum(t_d - kk, 0) + 1), 0.0)
    base = log_binom + betaln(a + kk, b + m_d) - betaln(a, b)
    log_c, log_1mc = pt.log(c), pt.log(om) + pt.log(kappa)
    terms = (
        base[:, :, None]
        + (kk + m_d)[:, :, None] * log_c[None, None, :]
        + (t_d - kk)[:, :, None] * log_1mc[None, None, :]
    )
    tie = pt.logsumexp(pt.switch(valid[:, :, None], terms, -np.inf), axis=1)
    log_mass = grid.log_weight + fam.pymc_log_density_logit(params, grid.u)
    rows = direction + log_mass[None, :] + tie[row_key.reshape(-1)]
    weight = pm.Data("row_weight", counts.row_weight.astype(np.float64))
    pm.Potential("votes", pt.dot(weight, pt.logsumexp(rows, axis=1)))


def _logp_and_grad(model):
    from pymc.blocking import DictToArrayBijection

    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    point = model.initial_point()
    x0 = DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars}).data
    return fn, x0


@pytest.mark.parametrize("family, mu", [("beta", None), ("beta_mixture", 0.8)])
def test_model_equals_the_dense_graph(monkeypatch, family, mu):
    """Log density and gradient of the tie model equal the dense graph's at random points.

    The template of a calibration check (one user per count row, zero-weight
    rows among them) and a simulated log on two pairs, ``mu`` unknown or known.
    """
    rng = np.random.default_rng(11)
    eta = rng.beta(3.0, 1.5, 50)
    n, s, t = simulate_tie_counts(eta, (2.0, 5.0), 0.6, (1, 25), [0.8, 0.7], seed=12)
    data = VoteData.from_counts(n, s, t=t)
    kw = {"family": family, "mu": None if mu is None else {p: mu for p in data.pairs}}
    if family == "beta_mixture":
        kw["n_components"] = 2
    new = build_model(data, **kw).model
    monkeypatch.setattr(pymc_ties, "tie_potential", _dense_tie_potential)
    old = build_model(data, **kw).model
    fn_new, x0 = _logp_and_grad(new)
    fn_old, x0_old = _logp_and_grad(old)
    np.testing.assert_array_equal(x0, x0_old)
    weights = [data.counts.row_weight.astype(float), rng.integers(0, 3, data.counts.n_rows)]
    for weight in weights:
        for model in (new, old):
            with model:
                pm.set_data({"row_weight": np.asarray(weight, dtype=float)})
        for _ in range(8):
            x = x0 + rng.normal(0.0, 1.5, size=x0.size)
            v_new, g_new = fn_new(x)
            v_old, g_old = fn_old(x)
            assert np.isfinite(v_old)
            assert float(v_new) == pytest.approx(float(v_old), rel=1e-10)
            np.testing.assert_allclose(g_new, g_old, rtol=1e-10, atol=1e-10 * np.abs(g_old).max())
