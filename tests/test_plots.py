"""Figures: each returns a Figure with the expected panels, lines, labels and markers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from attnmodel import plots  # noqa: E402
from attnmodel.inference.em import fit_em  # noqa: E402
from attnmodel.paper import experiments as ex  # noqa: E402
from attnmodel.paper import plots as paper_plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def two_point_traj():
    inits = ex.DEFAULT_INITS["two_point"][:3]
    return ex.em_trajectories("two_point", inits=inits, n_users=120, n_votes=(30, 60), seed=1)


@pytest.fixture(scope="module")
def beta_fit():
    data, eta = ex.simulate_data("beta", ex.BETA_TRUTH, 60, (20, 40), 0.8, seed=2)
    return fit_em(data, "beta", mu=0.8, n_init=1), eta


def _labelled(ax) -> bool:
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel())


def _data_lines(ax):
    """Lines drawn from data (not the horizontal reference lines)."""
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]


def test_objective_plot_has_one_line_per_start(two_point_traj):
    fig = plots.plot_em_objective(two_point_traj)
    assert isinstance(fig, Figure)
    ax_l, ax_gap = fig.axes
    assert all(_labelled(ax) for ax in fig.axes)
    assert len(_data_lines(ax_l)) == 3 and len(_data_lines(ax_gap)) == 3
    assert ax_gap.get_yscale() == "log"
    # The right panel shows L* - L: positive, ending far below where it starts.
    for ln in _data_lines(ax_gap):
        y = np.asarray(ln.get_ydata())
        assert np.all(y > 0) and y[-1] < 1e-6 * y[0]
    legend = [t.get_text() for t in ax_l.get_legend().get_texts()]
    assert legend[:3] == ["start 0", "start 1", "start 2"]
    # The table alone works too.
    fig2 = plots.plot_em_objective(two_point_traj.paths)
    assert len(_data_lines(fig2.axes[0])) == 3
    with pytest.raises(ValueError, match="objective"):
        plots.plot_em_objective(pd.DataFrame({"start": [0], "iteration": [0]}))


def test_objective_plot_reads_a_fit_and_its_result_tree(beta_fit):
    from attnmodel.results.em import em_to_datatree

    res = fit_em(beta_fit[0].data, "beta", mu=0.8, n_init=3)
    tree = em_to_datatree(res, n_draws=10)
    for obj in (res, tree):
        fig = plots.plot_em_objective(obj)
        lines = _data_lines(fig.axes[0])
        assert len(lines) == 3  # one per start
        for ln, run in zip(lines, res.runs_, strict=True):
            # The padding of shorter runs in the tree is not drawn.
            np.testing.assert_allclose(ln.get_ydata(), run["objective"])
    with pytest.raises(TypeError, match="EMResult"):
        plots.plot_em_objective([1, 2])
    with pytest.raises(ValueError, match="em_runs"):
        plots.plot_em_objective(xr.DataTree())


def test_objective_plot_of_a_tree_without_runs_draws_the_best_start(beta_fit):
    from attnmodel.results import em_to_datatree

    res = fit_em(beta_fit[0].data, "beta", mu=0.8, n_init=3)
    tree = em_to_datatree(res, n_draws=10)
    single = tree.copy()
    del single["em_runs"]
    fig = plots.plot_em_objective(single)
    (line,) = _data_lines(fig.axes[0])
    # The best start's path, as EM recorded it.
    np.testing.assert_allclose(line.get_ydata(), res.runs_[res.best_start_]["objective"])
    np.testing.assert_allclose(line.get_ydata(), np.asarray(tree["em_trace"]["objective"]))


def test_trajectory_plot_marks_truth_starts_and_optimum(two_point_traj):
    fig = paper_plots.plot_trajectories([two_point_traj, two_point_traj])
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eta_low", "eta_high")
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 1
    assert stars[0].get_xdata()[0] == pytest.approx(0.4)
    assert stars[0].get_ydata()[0] == pytest.approx(0.98)
    crosses = [ln for ln in ax.get_lines() if ln.get_marker() == "X"]
    assert crosses[0].get_xdata()[0] == pytest.approx(two_point_traj.optimum["eta_low"])
    circles = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert sorted(c.get_xdata()[0] for c in circles) == sorted(
        i["eta_low"] for i in two_point_traj.inits
    )
    assert len(ax.get_legend().get_texts()) == 3
    fig = paper_plots.plot_trajectories(two_point_traj, axes=[("q_low", "eta_low")])
    assert fig.axes[0].get_xlabel() == "q_low"
    with pytest.raises(ValueError, match="alpha"):
        paper_plots.plot_trajectories(two_point_traj, axes=[("alpha", "eta_low")])


@pytest.fixture(scope="module")
def density_fits():
    return ex.misspecification(n_users=150, n_init=1)


def test_density_plot_draws_true_and_fitted(density_fits):
    fig = paper_plots.plot_density_fit(density_fits)
    # Two panels, and a twin axis for the two-point fit's atoms.
    assert len(fig.axes) == 3
    left, right, twin = fig.axes
    assert twin.get_ylabel() == "atom mass"
    assert all(_labelled(ax) for ax in fig.axes[:2])
    # Right panel: the true and the fitted Beta density.
    labels = [ln.get_label() for ln in right.get_lines()]
    assert labels == ["true", "fitted"]
    np.testing.assert_allclose(right.get_lines()[1].get_ydata(), density_fits[1].curves["fit_pdf"])
    # Left panel: the true density as a line, the fitted atoms as stems at their masses.
    assert [ln.get_label() for ln in left.get_lines()] == ["true"]
    stems = twin.collections[0].get_segments()
    heights = sorted(seg[1][1] for seg in stems)
    assert heights == pytest.approx(sorted(density_fits[0].atoms["weight"]))
    assert "KS" in left.get_title()


def test_density_plot_cdf_kind(density_fits):
    fig = paper_plots.plot_density_fit(density_fits[0], kind="cdf")
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 2
    # The two-point CDF is a staircase with two steps.
    y = np.asarray(ax.get_lines()[1].get_ydata())
    assert np.unique(np.round(y, 12)).size == 3
    with pytest.raises(ValueError, match="kind"):
        paper_plots.plot_density_fit(density_fits, kind="hist")


def test_attentiveness_plot_from_user_posterior(beta_fit):
    res, eta = beta_fit
    post = res.posterior(eta_star=0.4)
    fig = plots.plot_attentiveness(post, true_eta=eta)
    (ax,) = fig.axes
    assert _labelled(ax)
    kept = int((post["p_above"] >= 0.95).sum())
    assert ax.get_title().startswith(f"{kept} of 60 users kept")
    cut = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert cut[0].get_ydata()[0] == pytest.approx(0.4)
    # Means are drawn sorted.
    means = np.concatenate([ln.get_ydata() for ln in ax.get_lines() if ln.get_marker() == "o"])
    assert sorted(means) == pytest.approx(sorted(post["eta_mean"].to_numpy()))
    # One interval per user.
    assert len(ax.collections[0].get_segments()) == 60
    with pytest.raises(ValueError, match="eta_star=0.4"):
        plots.plot_attentiveness(post, eta_star=0.6)


def test_attentiveness_plot_reads_an_em_result_tree(beta_fit):
    from attnmodel.results.em import em_to_datatree

    res, _ = beta_fit
    tree = em_to_datatree(res, eta_star=0.45, n_draws=10)
    fig = plots.plot_attentiveness(tree)
    ax = fig.axes[0]
    p = tree["attentiveness"]["p_above"].to_numpy()
    assert ax.get_title().startswith(f"{int((p >= 0.95).sum())} of 60 users kept")
    cut = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert cut[0].get_ydata()[0] == pytest.approx(0.45)
    assert "(em)" in ax.get_title()


def _contract_tree(post: xr.Dataset, mcse: np.ndarray) -> xr.DataTree:
    """A result DataTree as the shared result structure describes it."""
    att = post.drop_vars("eta_map").assign(p_above_mcse=("user", mcse))
    att.attrs = {}
    root = xr.Dataset(
        attrs={"attnmodel_result": 1, "method": "nuts", "eta_star": 0.5, "hdi_prob": 0.94}
    )
    return xr.DataTree.from_dict({"/": root, "/attentiveness": att})


def test_attentiveness_plot_reads_the_result_datatree(beta_fit):
    res, _ = beta_fit
    post = res.posterior(eta_star=0.5)
    p = post["p_above"].to_numpy()
    # Give the user closest to the 0.95 level a Monte Carlo error that straddles it.
    mcse = np.zeros_like(p)
    j = int(np.argmin(np.abs(p - 0.95)))
    mcse[j] = abs(p[j] - 0.95) / 2 + 1e-3
    tree = _contract_tree(post, mcse)
    for obj in (tree, tree["attentiveness"]):
        fig = plots.plot_attentiveness(obj)
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(lab.startswith("undetermined") for lab in labels)
        kept = int(((p >= 0.95) & (np.arange(p.size) != j)).sum())
        assert ax.get_title().startswith(f"{kept} of 60 users kept")
        assert "(nuts)" in ax.get_title()
    with pytest.raises(TypeError, match="DataTree"):
        plots.plot_attentiveness(post.to_dataframe())


def test_accuracy_plot_draws_means_over_seeds():
    rows = []
    for mu in (0.6, 0.9):
        for seed in (0, 1):
            for mode in ("known", "prior"):
                for sel in ("ranking", "threshold"):
                    rec = mu - 0.1 * seed + (0.05 if sel == "ranking" else 0.0)
                    rows.append(
                        {
                            "mu": mu,
                            "seed": seed,
                            "mu_mode": mode,
                            "selection": sel,
                            "recall": rec,
                            "precision": 0.9,
                        }
                    )
    table = pd.DataFrame(rows)
    fig = paper_plots.plot_accuracy_vs_mu(table)
    assert len(fig.axes) == 2 and all(_labelled(ax) for ax in fig.axes)
    ax = fig.axes[0]
    assert len(ax.containers) == 4  # (known, prior) x (ranking, threshold)
    ys = sorted(
        tuple(np.round(np.asarray(c.lines[0].get_ydata(), float), 9)) for c in ax.containers
    )
    # Means over the two seeds: mu - 0.05 (+ 0.05 for ranking).
    assert ys == sorted([(0.55, 0.85)] * 2 + [(0.6, 0.9)] * 2)
    assert len(fig.axes[1].get_legend().get_texts()) == 4
    with pytest.raises(ValueError, match="recall"):
        paper_plots.plot_accuracy_vs_mu(table.drop(columns="recall"))


def test_tradeoff_plot_one_panel_per_rule():
    table = pd.DataFrame(
        {
            "rule": ["prob"] * 3 + ["top"] * 3,
            "setting": [0.1, 0.5, 0.9, 1.0, 0.5, 0.1],
            "votes_kept_fraction": [0.9, 0.4, 0.0, 1.0, 0.5, 0.1],
            "casual_share_posterior": [0.1, 0.02, np.nan, 0.12, 0.03, 0.01],
            "casual_share_true": [0.11, 0.03, np.nan, 0.13, 0.02, 0.0],
        }
    )
    table.attrs["casual_below"] = 0.3
    fig = paper_plots.plot_tradeoff(table)
    assert len(fig.axes) == 2 and all(_labelled(ax) for ax in fig.axes)
    prob_ax = fig.axes[0]
    post_line, true_line = prob_ax.get_lines()
    # Settings that keep nothing are left out.
    np.testing.assert_allclose(post_line.get_xdata(), [0.9, 0.4])
    np.testing.assert_allclose(true_line.get_ydata(), [0.11, 0.03])
    assert "eta_star" in prob_ax.get_title()
    assert prob_ax.get_ylabel().endswith("(eta < 0.3)")
    assert [t.get_text() for t in prob_ax.get_legend().get_texts()] == ["posterior", "truth"]


def test_library_modules_do_not_import_the_paper():
    import ast
    from pathlib import Path

    import attnmodel

    package = Path(attnmodel.__file__).resolve().parent
    offenders = []
    for path in package.rglob("*.py"):
        part = path.relative_to(package).parts[0]
        if part in ("paper", "cli"):  # the paper itself, and the demo's scoring of filters
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "attnmodel.paper" or n.startswith("attnmodel.paper.") for n in names):
                offenders.append(str(path.relative_to(package)))
    assert offenders == []
