"""The DPO export loads with ``datasets`` in the layouts that TRL documents.

TRL's page "Dataset formats and types" (https://huggingface.co/docs/trl/dataset_formats,
the "Preference" row of its table) defines a preference dataset by its columns
``prompt``, ``chosen`` and ``rejected`` in one of two formats:

- standard: each column holds a string
  (``{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}``);
- conversational: each column holds a list of ``{"role", "content"}`` messages, the
  prompt ending in a ``user`` turn and ``chosen``/``rejected`` the ``assistant``
  turn(s) that answer it.

The DPO trainer's page (https://huggingface.co/docs/trl/dpo_trainer, "Expected
dataset type") asks for a preference dataset in either format. The checker below is
written from those pages, not from :mod:`attnmodel.export`: the files are made by the
``attnmodel export`` command and read back by ``datasets.load_dataset("json" /
"parquet", data_files=...)``, as a training script would read them. Further tests
change one thing in an exported file (a renamed column, a wrong role, ...) and show
that the checker rejects it, and run the reading part of ``examples/train_dpo.py``
(its training needs the ``train`` extra and is shown in docs/training.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from attnmodel import cli

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")


def trl_preference_format(ds: datasets.Dataset) -> str:
    """``"standard"`` or ``"conversational"``; an AssertionError says what breaks TRL's layout."""
    missing = [c for c in PREFERENCE_COLUMNS if c not in ds.column_names]
    assert not missing, (
        f"a TRL preference dataset has columns {list(PREFERENCE_COLUMNS)}; "
        f"missing {missing} among {ds.column_names}"
    )
    assert ds.num_rows > 0, "no rows"
    formats = set()
    for row, example in enumerate(ds):
        values = {c: example[c] for c in PREFERENCE_COLUMNS}
        if all(isinstance(v, str) for v in values.values()):
            for c, v in values.items():
                assert v.strip(), f"row {row}, column {c!r}: empty text"
            formats.add("standard")
            continue
        for c, v in values.items():
            assert isinstance(v, list) and v, (
                f"row {row}, column {c!r}: {v!r} is neither a string nor a list of messages "
                "(one format for all three columns)"
            )
            for m in v:
                assert isinstance(m, dict) and set(m) == {"role", "content"}, (
                    f"row {row}, column {c!r}: message {m!r} is not {{'role', 'content'}}"
                )
                assert isinstance(m["content"], str) and m["content"].strip(), (
                    f"row {row}, column {c!r}: message without text"
                )
        prompt_roles = [m["role"] for m in values["prompt"]]
        known = set(prompt_roles) <= {"system", "user", "assistant"}
        assert known and prompt_roles[-1] == "user", (
            f"row {row}: the prompt's roles {prompt_roles} do not end in a user turn"
        )
        for c in ("chosen", "rejected"):
            roles = [m["role"] for m in values[c]]
            assert set(roles) == {"assistant"}, f"row {row}, column {c!r}: roles {roles}"
        formats.add("conversational")
    assert len(formats) == 1, f"rows mix the formats {sorted(formats)}"
    return formats.pop()


def load(path: Path, cache: Path) -> datasets.Dataset:
    kind = {".jsonl": "json", ".parquet": "parquet"}[path.suffix]
    return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=str(cache))


def text(value) -> str:
    """The text of a standard cell or of a one-message conversational cell."""
    if isinstance(value, str):
        return value
    assert len(value) == 1, value
    return value[0]["content"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A simulated log with texts, exported by the CLI in both layouts and both file types."""
    d = tmp_path_factory.mktemp("trl")
    args = ["--quiet", "simulate", "--family", "beta", "--params", "alpha=3", "beta=5"]
    args += ["--users", "30", "--votes", "5..15", "--mu", "gpt vs llama=0.8"]
    args += ["claude vs alpaca=0.7", "--texts", "--seed", "3", "--out", str(d / "votes.csv")]
    assert cli.main(args) == 0
    for layout in ("standard", "conversational"):
        for suffix in (".jsonl", ".parquet"):
            out = d / f"{layout}{suffix}"
            extra = ["--conversational"] if layout == "conversational" else []
            cmd = ["--quiet", "export", str(d / "votes.csv"), *extra, "--keep", "user"]
            assert cli.main([*cmd, "--out", str(out)]) == 0
    return d


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("layout", ["standard", "conversational"])
def test_export_loads_in_trls_layout(exported, tmp_path, layout, suffix):
    ds = load(exported / f"{layout}{suffix}", tmp_path)
    assert trl_preference_format(ds) == layout
    # The rows are the votes, in order, the chosen answer the one the user voted for.
    votes = pd.read_csv(exported / "votes.csv")
    assert ds.num_rows == len(votes)
    a_won = (votes["winner"] == "model_a").to_numpy()
    chosen = np.where(a_won, votes["response_a"], votes["response_b"])
    rejected = np.where(a_won, votes["response_b"], votes["response_a"])
    assert [text(v) for v in ds["prompt"]] == votes["prompt"].tolist()
    assert [text(v) for v in ds["chosen"]] == chosen.tolist()
    assert [text(v) for v in ds["rejected"]] == rejected.tolist()
    assert ds["user"] == votes["user"].tolist()  # --keep columns ride along


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rename_chosen(r):
    r["preferred"] = r.pop("chosen")


def _bot_role(r):
    r["chosen"][0]["role"] = "bot"


def _string_prompt(r):
    r["prompt"] = r["prompt"][0]["content"]


def _text_key(r):
    r["rejected"] = [{"role": "assistant", "text": r["rejected"][0]["content"]}]


def _empty_answer(r):
    r["chosen"] = ""


BREAKS = {
    # name: (layout of the file, change to every row, what the checker says)
    "renamed column": ("standard", _rename_chosen, r"missing \['chosen'\]"),
    "empty answer": ("standard", _empty_answer, r"column 'chosen': empty text"),
    "wrong role": ("conversational", _bot_role, r"column 'chosen': roles \['bot'\]"),
    "mixed formats": ("conversational", _string_prompt, r"'prompt'.*neither a string nor"),
    "message key": ("conversational", _text_key, r"column 'rejected': message .* is not"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_checker_rejects_a_broken_export(exported, tmp_path, case):
    layout, change, message = BREAKS[case]
    rows = _rows(exported / f"{layout}.jsonl")
    for r in rows:
        change(r)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AssertionError, match=message):
        trl_preference_format(load(broken, tmp_path / "cache"))


def _example_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "train_dpo.py"
    spec = importlib.util.spec_from_file_location("train_dpo_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_script_reads_the_export_without_torch(exported, tmp_path):
    # examples/train_dpo.py imports torch, transformers and TRL only when it trains, so
    # its reading of the files runs here; the training itself is shown in docs/training.md.
    script = _example_script()
    for layout in ("standard", "conversational"):
        ds = script.load_pairs(str(exported / f"{layout}.parquet"))
        assert ds.num_rows == len(pd.read_csv(exported / "votes.csv"))
        assert trl_preference_format(ds) == layout
        # The tokenizer's characters cover every text and role of the file.
        chars = {c for t in script.texts(ds) for c in t}
        assert {"Q", "'"} <= chars
        assert ("assistant" in set(script.texts(ds))) == (layout == "conversational")
    rows = _rows(exported / "standard.jsonl")
    for r in rows:
        _rename_chosen(r)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit, match=r"missing column\(s\) \['chosen'\]"):
        script.load_pairs(str(broken))
    with pytest.raises(SystemExit, match="no such file"):
        script.load_pairs(str(tmp_path / "absent.jsonl"))
