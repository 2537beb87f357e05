"""What a new user meets in the first hour (issue 11, "First hour").

The README's examples run as written (tests/test_doc_examples.py runs every block);
these tests hold the API behind them: the fitters refuse a table or a path with a
message naming the constructor, ``simulate_votes`` makes the same log as the
command line's ``simulate``, the figures say what they show, and the command line
and the API decide alike at a cut other than the fitted one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import attnmodel as am
from attnmodel.errors import VoteDataTypeError
from tests.test_demo import attnmodel as cli


@pytest.fixture(scope="module")
def raw_votes():
    return am.simulate_votes(
        "beta", {"alpha": 3.0, "beta": 5.0}, 40, 20, mu=0.8, layout="raw", seed=1
    ).votes


# ---------------------------------------------------------------------------
# the fitters are given a table or a path


@pytest.mark.parametrize("fitter", ["fit_em", "fit"])
def test_a_dataframe_is_refused_naming_from_frame(raw_votes, fitter):
    with pytest.raises(VoteDataTypeError, match=r"VoteData\.from_frame\(df") as err:
        getattr(am, fitter)(raw_votes, "beta")
    assert isinstance(err.value, TypeError)
    assert str(err.value).startswith(f"{fitter}() needs VoteData, got a DataFrame")


@pytest.mark.parametrize("fitter", ["fit_em", "fit"])
def test_a_path_is_refused_naming_from_file(fitter, tmp_path):
    path = tmp_path / "votes.parquet"
    for given in (str(path), path):
        with pytest.raises(VoteDataTypeError, match=r"VoteData\.from_file\(") as err:
            getattr(am, fitter)(given, "beta")
        assert repr(str(path)) in str(err.value)


def test_simulated_votes_are_refused_naming_to_data():
    sim = am.simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 200, 30, seed=0)
    with pytest.raises(am.VoteDataTypeError, match=r"sim\.to_data\(\)"):
        am.fit_em(sim, "beta")
    assert am.fit_em(sim.to_data(), "beta", mu=0.8, n_init=1).converged_


# ---------------------------------------------------------------------------
# simulate_votes and the command line's simulate


def test_simulate_votes_with_texts_is_the_command_lines_log(tmp_path):
    """``simulate_votes(..., layout="raw", texts=True)`` writes what ``simulate --texts`` does."""
    proc = cli(
        "-q", "simulate", "--family", "beta", "--params", "alpha=3", "beta=5",
        "--users", 30, "--votes", "5..9", "--mu", 0.8, "--texts", "--seed", 7,
        "--out", tmp_path / "cli.csv", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sim = am.simulate_votes(
        "beta", {"alpha": 3, "beta": 5}, 30, (5, 9), mu=0.8, layout="raw", texts=True, seed=7
    )
    assert {"prompt", "response_a", "response_b"} <= set(sim.votes.columns)
    from_cli = pd.read_csv(tmp_path / "cli.csv", dtype={"user": str})
    pd.testing.assert_frame_equal(from_cli, sim.votes.reset_index(drop=True), check_dtype=False)
    # The answer shown first is model_a's, so that the texts follow each vote.
    first = sim.votes.iloc[0]
    assert first["response_a"].startswith(f"{first['model_a']}'s answer")
    # Without texts= the log has no text columns (the default stays as it was).
    plain = am.simulate_votes("beta", {"alpha": 3, "beta": 5}, 30, (5, 9), layout="raw", seed=7)
    assert "prompt" not in plain.votes.columns


# ---------------------------------------------------------------------------
# figures


@pytest.fixture(scope="module")
def attentive_fit(tmp_path_factory):
    """A fit where nearly everybody is attentive, as on MT-Bench, read from a file."""
    sim = am.simulate_votes(
        "beta", {"alpha": 10.0, "beta": 0.5}, 65, (20, 80),
        mu={"gpt-4 vs llama-13b": 0.9, "claude-v1 vs alpaca-13b": 0.75}, layout="raw", seed=3,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("votes") / "judges.csv"
    sim.votes.to_csv(path, index=False)
    data = am.VoteData.from_file(path)
    return data, am.fit_em(data, "beta", n_init=1, warn=False)


def test_convergence_plot_is_titled_with_family_and_data(attentive_fit):
    data, fit = attentive_fit
    fig = am.plots.plot_em_objective(fit)
    title = fig.get_suptitle()
    assert title.startswith("MAP-EM, family beta: ")
    assert "judges.csv" in title
    assert f"{data.n_users} users, {data.n_votes} votes, {data.n_pairs} pairs" in title
    # The result tree gives the same description (its data_source is the file).
    tree = am.fit(data, "beta", n_init=1, warn=False)
    assert am.plots.plot_em_objective(tree).get_suptitle() == title
    # A title given wins; a bare table of paths has none by default.
    assert am.plots.plot_em_objective(fit, title="mine").get_suptitle() == "mine"
    paths = fit.runs_[0].assign(start=0)
    assert am.plots.plot_em_objective(paths).get_suptitle() == ""


def test_attentiveness_legend_covers_no_user(attentive_fit):
    """The legend stands beside the axes: no plotted user lies under it."""
    import matplotlib.pyplot as plt

    data, fit = attentive_fit
    post = am.user_posterior(fit, eta_star=0.5)
    fig = am.plots.plot_attentiveness(post, prob=0.95)
    (ax,) = fig.axes
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    points = np.vstack([line.get_xydata() for line in ax.get_lines() if line.get_marker() == "o"])
    shown = ax.transData.transform(points)
    inside = (
        (shown[:, 0] >= legend.x0) & (shown[:, 0] <= legend.x1)
        & (shown[:, 1] >= legend.y0) & (shown[:, 1] <= legend.y1)
    )  # fmt: skip
    assert len(points) == data.n_users and not inside.any()
    plt.close(fig)


def test_em_vs_nuts_figure_says_when_nuts_failed_its_diagnostics(attentive_fit):
    import matplotlib.pyplot as plt

    from tests.nuts_trees import nuts_like

    _, fit = attentive_fit
    em = am.results.em.em_to_datatree(fit, n_draws=50)
    good = nuts_like(fit, em, chains=4, draws=250, jitter=0.05, seed=1)
    bad = nuts_like(fit, em, chains=4, draws=250, jitter=0.05, divergences=7, seed=1)
    ok_title = am.compare.plot_comparison(em, good).get_suptitle()
    assert ok_title == "MAP-EM against NUTS: family beta, 65 users"
    fig = am.compare.plot_comparison(em, bad)
    title = fig.get_suptitle()
    assert title.startswith(ok_title + "\n")
    assert "NUTS diagnostics failed: 7 divergent transitions (allowed 0)" in title
    assert "not to be trusted" in title
    assert fig._suptitle.get_color() != "black"
    # The same words as the filter's refusal of that fit.
    with pytest.raises(am.DiagnosticsError, match="7 divergent transitions"):
        am.filter_users(bad, fit.data, rule="prob")
    plt.close("all")


# ---------------------------------------------------------------------------
# the command line and the API at a cut other than the fitted one


def _decisions(res) -> pd.Series:
    """The API's decisions under the four labels of the CLI's ``--decisions-out``."""
    out = pd.Series("dropped", index=res.keep.index.astype(str), dtype=object)
    out[res.keep.to_numpy()] = "kept"
    if res.undetermined is not None:
        out[res.undetermined.to_numpy()] = "undetermined"
    if res.little_evidence is not None:
        out[res.little_evidence.to_numpy()] = "too_little_evidence"
    return out.sort_index()


def test_cli_and_api_decide_alike_at_a_cut_other_than_the_fitted_one(tmp_path):
    sim = am.simulate_votes(
        "beta", {"alpha": 4.0, "beta": 2.0}, 150, (20, 60),
        mu={"gpt-4 vs llama-13b": 0.85, "claude-v1 vs alpaca-13b": 0.7}, layout="raw", seed=11,
    )  # fmt: skip
    sim.votes.to_csv(tmp_path / "votes.csv", index=False)
    data = am.VoteData.from_file(tmp_path / "votes.csv")

    def cli_decisions(result, *extra):
        proc = cli(
            "filter", result, "votes.csv", *extra, "--out", f"kept-{result}.csv",
            "--decisions-out", f"decisions-{result}.csv", cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        table = pd.read_csv(tmp_path / f"decisions-{result}.csv", dtype={"user": str})
        return table.set_index("user")["decision"].sort_index(), proc.stderr

    fitted = cli("-q", "fit", "votes.csv", "--family", "beta", "--out", "fit.nc", cwd=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    # At another cut the saved result is filtered from its eta draws, by the CLI and the
    # API alike (one code path), and the CLI says so and how to get exact values.
    from_cli, stderr = cli_decisions("fit.nc", "--eta-star", "0.7")
    assert "note: --eta-star 0.7 is not the cut the result was fitted at (0.5)" in stderr
    assert "--eta-star 0.7' gives the values at that cut (exact for MAP-EM)" in stderr
    tree = am.load(tmp_path / "fit.nc")
    api_tree = am.filter_users(tree, data, rule="prob", eta_star=0.7)
    assert "eta draws" in api_tree.settings["p_above_from"]
    assert _decisions(api_tree).to_dict() == from_cli.to_dict()
    # The EMResult is exact at any cut: the same decisions as the CLI's fit at that cut.
    exact = am.filter_users(am.fit_em(data, "beta", seed=0), rule="prob", eta_star=0.7)
    cmd = ("-q", "fit", "votes.csv", "--family", "beta", "--eta-star", 0.7, "--out", "fit07.nc")
    assert cli(*cmd, cwd=tmp_path).returncode == 0
    from_cli_exact, stderr = cli_decisions("fit07.nc", "--eta-star", "0.7")
    assert "note:" not in stderr
    assert _decisions(exact).to_dict() == from_cli_exact.to_dict()
    assert (from_cli_exact != "undetermined").all()


def test_the_difference_is_documented_in_help_and_docstring(tmp_path):
    proc = cli("filter", "--help", cwd=tmp_path)
    text = " ".join(proc.stdout.split())
    assert "Another cut is estimated from RESULT's stored eta draws" in text
    assert "filter_users(fit, eta_star=E) given the EMResult itself is exact" in text
    doc = " ".join(am.filter_users.__doc__.split())
    assert "at such a cut the two can decide differently" in doc
    assert "attnmodel fit --eta-star" in doc


# ---------------------------------------------------------------------------
# reading: a user called NA, a broken JSON line


@pytest.mark.parametrize("engine", ["pandas", "duckdb", "dask"])
def test_a_user_called_na_is_a_user_and_only_empty_ids_are_missing(tmp_path, engine):
    path = tmp_path / "votes.csv"
    path.write_text(
        "user,model_a,model_b,winner\n"
        "NA,x,y,model_a\nnull,x,y,model_b\nNA,y,x,model_b\nb,x,y,model_a\n"
    )
    data = am.VoteData.from_file(path, engine=engine)
    assert list(data.users) == ["NA", "null", "b"]
    n, _ = data.user_counts()
    assert n.loc["NA"].sum() == 2
    # Another column keeps its missing cells: a winner NA is missing, named by its row.
    path.write_text("user,model_a,model_b,winner\na,x,y,model_a\nb,x,y,NA\n")
    # (Dask names a row by its partition and place in it.)
    with pytest.raises(am.VoteDataError, match=r"column 'winner', (partition 0, )?row 1"):
        am.VoteData.from_file(path, engine=engine)
    # An empty cell is the one missing id, named by its row.
    path.write_text("user,model_a,model_b,winner\nNA,x,y,model_a\n,x,y,model_b\n")
    missing = r"column 'user', (partition 0, )?row 1\b.*user id is missing"
    with pytest.raises(am.VoteDataError, match=missing):
        am.VoteData.from_file(path, engine=engine)


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_broken_json_line_is_named_by_its_line_number(tmp_path, engine):
    good = '{"user": "a", "model_a": "x", "model_b": "y", "winner": "model_a"}'
    path = tmp_path / "votes.jsonl"
    path.write_text(f"{good}\n\n{good}\n" + '{"user": "c", "model_a": "x" "model_b": "y"}\n')
    with pytest.raises(am.VoteDataError, match=r"'.*votes\.jsonl': line 4 is not valid JSON"):
        am.VoteData.from_file(path, engine=engine)


def test_cli_names_the_broken_json_line(tmp_path):
    good = '{"user": "a", "model_a": "x", "model_b": "y", "winner": "model_a"}'
    (tmp_path / "votes.jsonl").write_text(f"{good}\n{good}\n{{oops\n")
    proc = cli("fit", "votes.jsonl", "--family", "beta", "--out", "fit.nc", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "attnmodel: error: 'votes.jsonl': line 3 is not valid JSON" in proc.stderr
    assert not (tmp_path / "fit.nc").exists()


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
@pytest.mark.parametrize("n_tie_pairs", [2, 8])
def test_tie_only_pairs_are_listed_and_a_cut_list_says_so(tmp_path, engine, n_tie_pairs):
    rows = ["user,model_a,model_b,winner", "u1,x,y,model_a", "u2,x,y,model_b", "u2,y,x,model_a"]
    rows += [f"u1,m{k},n{k},tie" for k in range(n_tie_pairs)]
    path = tmp_path / "votes.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.warns(am.AttnmodelWarning, match="only tie votes") as caught:
        data = am.VoteData.from_file(path, engine=engine)
    assert list(data.pairs) == ["x vs y"] or list(data.pairs) == ["y vs x"]
    (message,) = [str(w.message) for w in caught if "only tie votes" in str(w.message)]
    named = [f"m{k} vs n{k}" for k in range(n_tie_pairs)]
    shown = [
        p
        for p in named
        if repr(p) in message or repr(" vs ".join(p.split(" vs ")[::-1])) in message
    ]
    assert message.startswith(f"{n_tie_pairs} pair(s) have only tie votes and were left out: ")
    if n_tie_pairs > 5:
        assert len(shown) == 5 and message.endswith(f" and {n_tie_pairs - 5} more")
    else:
        assert len(shown) == n_tie_pairs and "more" not in message
