"""How the number of users the ``prob`` rule keeps moves with the ``mu`` prior.

With and without the evidence screen (``min_evidence``), on the MT-Bench human judgments.

Run from the repository root (the data live in ``shared/data`` beside the clone)::

    python docs/evidence_table.py [PATH/TO/mtbench_human_judgments.csv]

It fits the default family (MAP-EM, every default of :func:`attnmodel.fit_em`, whatever
they are) under three ``mu`` settings: the default prior, ``BetaPrior(8, 2)`` and ``mu``
known at 0.75 for every pair, and prints, for two cuts ``eta_star`` and several values
of ``min_evidence``, the users kept by ``prob = 0.95`` under each setting and how far
that number moves (largest minus smallest, and that spread over the mean). The last
line names the ``min_evidence`` whose worst relative spread over the cuts is smallest.

Data: the ``human`` split of lmsys/mt_bench_human_judgments (Zheng et al. 2023,
"Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", arXiv:2306.05685), label
and key columns, as re-published in aliabbas-muhammadi/judgelab; CC-BY-4.0.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from attnmodel import filter_users, fit_em
from attnmodel.data.votes import VoteData
from attnmodel.model.priors import BetaPrior

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = ROOT.parent / "shared" / "data" / "mtbench_human_judgments.csv"
SETTINGS = {
    "default prior": {},
    "BetaPrior(8, 2)": {"mu_prior": BetaPrior(8, 2)},
    "mu = 0.75 known": {"mu": 0.75},
}
CUTS = (0.5, 0.8)
#: None: the rule without the screen (``min_evidence=0``).
MIN_EVIDENCE = (None, 0.5, 1.0, 1.5, 2.0, 3.0)


def main(path: Path = DEFAULT_PATH) -> None:
    """Fit under each ``mu`` setting and print the table."""
    data = VoteData.from_file(path, user="user_id")
    with warnings.catch_warnings():
        # Fits whose estimates sit at a bound warn; the table is about what the filter does.
        warnings.simplefilter("ignore")
        fits = {name: fit_em(data, **kw) for name, kw in SETTINGS.items()}
    print(f"{data.n_users} users, {data.n_votes} votes on {data.n_pairs} pairs ({path.name})")
    for name, res in fits.items():
        params = ", ".join(f"{k}={np.round(v, 3)}" for k, v in res.params_.items())
        print(f"  {name}: {res.family.name}({params}), mean mu {res.mu_.mean():.3f}")
    header = ["eta_star", "min_evidence", *SETTINGS, "spread", "spread / mean"]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    worst: dict[object, float] = {}
    for eta_star in CUTS:
        for me in MIN_EVIDENCE:
            kept = []
            for res in fits.values():
                out = filter_users(res, rule="prob", eta_star=eta_star, min_evidence=me or 0.0)
                kept.append(out.counts["users_kept"])
            spread = max(kept) - min(kept)
            rel = spread / max(np.mean(kept), 1e-12)
            worst[me] = max(worst.get(me, 0.0), rel)
            label = "off" if me is None else f"{me:g}"
            cells = [f"{eta_star:g}", label, *map(str, kept), str(spread), f"{rel:.0%}"]
            print("| " + " | ".join(cells) + " |")
    best = min((me for me in MIN_EVIDENCE if me is not None), key=lambda me: worst[me])
    print()
    print(
        "worst spread / mean over the cuts: "
        + ", ".join(f"{'off' if me is None else f'{me:g}'}: {worst[me]:.0%}" for me in worst)
    )
    print(f"least movement with the mu prior: min_evidence = {best:g}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH)
