"""Train a tiny causal language model with TRL's DPOTrainer on an attnmodel export.

The model is randomly initialised (a two-layer Llama of width 32) and the
tokenizer is built here from the export's characters, so nothing is downloaded:
the point is that the file ``attnmodel export`` (or ``attnmodel demo``) writes
goes into TRL's trainer as it is, in either layout (standard strings or
conversational messages), and that a few steps of DPO on CPU move the model
towards the chosen answers. A share of the pairs is held out; the held-out DPO
loss and reward accuracy are printed before and after training.

Needs the train extra: ``pip install 'attnmodel[train]'`` (torch, transformers,
TRL, datasets). Run::

    attnmodel demo --no-nuts --out demo-output
    python examples/train_dpo.py demo-output/dpo.jsonl --steps 40
"""

from __future__ import annotations

import argparse
import copy
import os
import string
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is built locally

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pairs", help="an attnmodel DPO export (.jsonl or .parquet)")
    p.add_argument("--steps", type=int, default=40, help="optimizer steps (default 40)")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per step (default 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--beta", type=float, default=0.1, help="DPO's beta (default 0.1)")
    p.add_argument("--held-out", type=float, default=0.2, help="share of pairs held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="DIR", help="save the trained model and tokenizer here")
    return p.parse_args(argv)


def load_pairs(path: str):
    """The export as a ``datasets.Dataset``, read the way TRL's examples read files."""
    import datasets

    suffix = Path(path).suffix.lower()
    kinds = {".jsonl": "json", ".parquet": "parquet"}
    if suffix not in kinds:
        sys.exit(f"{path}: expected an attnmodel export, .jsonl or .parquet")
    if not Path(path).is_file():
        sys.exit(f"{path}: no such file (run `attnmodel demo` or `attnmodel export` first)")
    datasets.disable_progress_bars()
    ds = datasets.load_dataset(kinds[suffix], data_files=path, split="train")
    missing = {"prompt", "chosen", "rejected"} - set(ds.column_names)
    if missing:
        sys.exit(f"{path}: missing column(s) {sorted(missing)}; columns are {ds.column_names}")
    return ds


def texts(ds):
    """Every string of the three preference columns, in either layout."""
    for column in ("prompt", "chosen", "rejected"):
        for value in ds[column]:
            if isinstance(value, str):
                yield value
            else:
                for message in value:
                    yield message["role"]
                    yield message["content"]


def char_tokenizer(ds):
    """A character-level tokenizer over the export's characters, with a chat template.

    One token per character, so that a prompt followed by its answer tokenizes as
    the prompt's tokens followed by the answer's (DPOTrainer splits them there).
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<eos>"]
    chars = set(string.printable) | {c for t in texts(ds) for c in t}
    vocab = {tok: i for i, tok in enumerate(specials + sorted(chars - {"\x0b", "\x0c"}))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_model(vocab_size: int, seed: int):
    """A randomly initialised two-layer Llama, hidden size 32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config)


def main(argv=None) -> int:
    """Load the export, build the model and tokenizer, evaluate, train, evaluate."""
    args = parse_args(argv)
    started = time.perf_counter()
    ds = load_pairs(args.pairs)  # a wrong file is refused before the slow imports
    import torch
    import transformers
    import trl
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    transformers.logging.set_verbosity_error()
    # TRL 1.x still passes transformers 5's deprecated ``gradient_checkpointing`` names.
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*checkpointing")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    layout = "conversational" if isinstance(ds[0]["prompt"], list) else "standard"
    split = ds.train_test_split(test_size=args.held_out, seed=args.seed)
    train, held_out = split["train"], split["test"]
    tokenizer = char_tokenizer(ds)
    model = tiny_model(len(tokenizer), args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"TRL {trl.__version__}; CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"{len(ds)} pairs ({layout} layout) from {args.pairs}: "
        f"{len(train)} to train on, {len(held_out)} held out"
    )
    print(
        f"model: Llama, 2 layers, hidden 32, {n_params:,} parameters, random init; "
        f"tokenizer: one token per character, {len(tokenizer)} tokens"
    )
    with tempfile.TemporaryDirectory() as scratch:
        config = DPOConfig(
            output_dir=scratch,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=args.lr,
            beta=args.beta,
            max_length=128,
            logging_steps=max(1, args.steps // 8),
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
            seed=args.seed,
        )
        trainer = DPOTrainer(
            model=model,
            # DPO's reference is the starting policy; without one TRL reloads it from
            # the model's name on disk or the hub, which a model built here has not.
            ref_model=copy.deepcopy(model),
            args=config,
            train_dataset=train,
            eval_dataset=held_out,
            processing_class=tokenizer,
        )
        trainer.remove_callback(PrinterCallback)  # the table below shows the logged steps
        before = trainer.evaluate()
        t0 = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - t0
        after = trainer.evaluate()
    print(f"\n{'step':>5} {'loss':>7} {'reward acc':>10} {'margin':>8}")
    for row in trainer.state.log_history:
        if "loss" in row and "rewards/accuracies" in row:
            print(
                f"{row['step']:>5} {row['loss']:>7.4f} {row['rewards/accuracies']:>10.3f} "
                f"{row['rewards/margins']:>8.4f}"
            )
    print(f"\nheld-out pairs ({len(held_out)}):  DPO loss  reward accuracy")
    for name, m in (("before training", before), ("after training", after)):
        print(f"  {name:<16} {m['eval_loss']:>10.4f} {m['eval_rewards/accuracies']:>16.3f}")
    print(
        f"\n{args.steps} steps of {args.batch_size} pairs in {train_seconds:.1f} s "
        f"(whole script {time.perf_counter() - started:.1f} s)"
    )
    if args.save:
        trainer.save_model(args.save)
        tokenizer.save_pretrained(args.save)
        print(f"model and tokenizer saved to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
