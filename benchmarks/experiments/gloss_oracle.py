"""The gloss oracle (Gloss2Text): the twin's decoder family reading the gold glosses as text.

    python -m benchmarks.experiments.gloss_oracle --output results/gloss_oracle.json [--train-videos 1500]

It bounds what the video side of the PHOENIX twin can reach: the twin renders every gloss as a
sign, so a perfect video encoder could at best recover the gloss sequence. The model is the
text part of the twin's model (``configs/phoenix2014t_twin.yaml``: the preset's mBART config and
the same tokenizer), built as a plain ``MBartForConditionalGeneration`` whose encoder reads the
lower-cased gloss sequence. Training budget: the epochs of the twin's stages scl and translate
together (the decoder trains in both), with stage translate's batch size, learning rate,
warm-up and label smoothing; the final model is scored on dev and test with the evaluation's
beam size and length, by the same metric (BLEU-1..4 with 13a, ROUGE-L).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from datasets import Dataset
from transformers import (
    AutoTokenizer,
    MBartForConditionalGeneration,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

from benchmarks.harness import REPO_ROOT as REPO
from modeling_scl_slt import decode_generated
from modeling_scl_slt.modeling_scl_slt import shift_tokens_right
from trainers.application.tokenization import config_for_tokenizer
from trainers.metrics import compute_translation_metrics

TWIN_CONFIG = REPO / "configs" / "phoenix2014t_twin.yaml"
SPLITS = ("train", "validation", "test")


def read_rows(annotations: Path) -> dict[str, list[dict[str, Any]]]:
    """The ``{split}.jsonl`` rows (``gloss``, ``text``) of the annotation folder."""
    rows = {}
    for split in SPLITS:
        path = annotations / f"{split}.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path} does not exist: the gloss oracle needs the {split} annotations")
        rows[split] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows


def encode(rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Glosses (lower-cased) as encoder input and the sentence + eos as labels (the recipe's convention)."""

    def tokens(text: str) -> list[int]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 1]
        return [*ids, tokenizer.eos_token_id]

    return Dataset.from_dict(
        {
            "input_ids": [tokens(row["gloss"].lower()) for row in rows],
            "labels": [tokens(row["text"]) for row in rows],
        }
    )


class GlossCollator:
    """Pad glosses and labels; decoder inputs start from the target-language token, as the recipe's.

    (mBART's own label shift would start from the labels' last token, eos, instead.)
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, decoder_start_token_id: int) -> None:
        self.tokenizer = tokenizer
        self.decoder_start_token_id = decoder_start_token_id

    def __call__(self, examples: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad({"input_ids": [e["input_ids"] for e in examples]}, return_tensors="pt")
        labels = self.tokenizer.pad({"input_ids": [e["labels"] for e in examples]}, return_tensors="pt")
        pad = self.tokenizer.pad_token_id
        batch["decoder_input_ids"] = shift_tokens_right(labels["input_ids"], pad, self.decoder_start_token_id)
        batch["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
        return batch


def translate(
    model: MBartForConditionalGeneration,
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    num_beams: int,
    max_new_tokens: int,
    batch_size: int = 32,
) -> list[str]:
    """Beam-search translations of every row, in order."""
    model.eval()
    hypotheses: list[str] = []
    for start in range(0, len(dataset), batch_size):
        batch = tokenizer.pad(
            {"input_ids": dataset[start : start + batch_size]["input_ids"]}, return_tensors="pt"
        )
        with torch.inference_mode():
            output = model.generate(**batch, num_beams=num_beams, max_new_tokens=max_new_tokens)
        hypotheses += decode_generated(tokenizer, output, model.generation_config)
    return hypotheses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, required=True, help="JSON file for the metrics")
    parser.add_argument("--annotations", type=Path, default=REPO.parent / "shared" / "data" / "phoenix2014t")
    parser.add_argument(
        "--train-videos", type=int, default=None, help="the first N train rows (default: all)"
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=None,
        help="training epochs (default: the twin's scl + translate epochs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    twin = yaml.safe_load(TWIN_CONFIG.read_text(encoding="utf-8"))
    rows = read_rows(args.annotations)
    rows["train"] = rows["train"][: args.train_videos]
    tokenizer = AutoTokenizer.from_pretrained(REPO / twin["model"]["tokenizer"])
    text_config = config_for_tokenizer(
        twin["model"]["preset"], tokenizer, twin["model"]["tgt_lang"]
    ).text_config
    model = MBartForConditionalGeneration(text_config)
    translate_section, evaluation = twin["translate"], twin["evaluation"]
    max_length = text_config.max_position_embeddings
    data = {split: encode(rows[split], tokenizer, max_length) for split in SPLITS}
    training = Seq2SeqTrainingArguments(
        output_dir=str(args.output.with_suffix(".run")),
        num_train_epochs=args.epochs or twin["scl"]["epochs"] + translate_section["epochs"],
        per_device_train_batch_size=translate_section["batch_size"],
        learning_rate=translate_section["learning_rate"],
        warmup_steps=translate_section.get("warmup_ratio", 0.0),
        lr_scheduler_type="cosine",
        label_smoothing_factor=translate_section["label_smoothing"],
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
        logging_steps=50,
        disable_tqdm=True,
    )
    collator = GlossCollator(tokenizer, text_config.decoder_start_token_id)
    trainer = Seq2SeqTrainer(model=model, args=training, train_dataset=data["train"], data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    result: dict[str, Any] = {"train_seconds": train_seconds, "train_rows": len(rows["train"])}
    for split in ("validation", "test"):
        hypotheses = translate(
            model, data[split], tokenizer, evaluation["num_beams"], evaluation["max_new_tokens"]
        )
        result[split] = compute_translation_metrics(
            hypotheses, [row["text"] for row in rows[split]], language="de"
        )
        print(f"{split}: " + "  ".join(f"{k} {v:.2f}" for k, v in result[split].items()), flush=True)
    result["settings"] = {
        "epochs": training.num_train_epochs,
        "batch_size": training.per_device_train_batch_size,
        "learning_rate": training.learning_rate,
        "label_smoothing": training.label_smoothing_factor,
        "num_beams": evaluation["num_beams"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "machine": f"{platform.platform()}, Python {platform.python_version()}, torch {torch.__version__}",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
