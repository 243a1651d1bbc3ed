"""Run by tests/test_distributed.py under `accelerate launch` with 2 CPU processes (gloo).

Each rank trains stage scl for one epoch on the same curriculum and writes the names of the
samples in every batch it trained on, plus its final parameters, to OUT_DIR/rank{r}.*.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_trainer import (
    SENTENCES,
    RecordingCollator,
    arguments,
    collators,
    tiny_corpus,
    tiny_model,
)
from trainers.application.recipe import close_process_group
from trainers.application.tokenization import train_tokenizer
from trainers.training.trainer import SclSltTrainer

NUM_SAMPLES = 16


def main(out_dir: Path) -> None:
    tokenizer = train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")
    _, eval_collator = collators(tokenizer)
    recorder = RecordingCollator(eval_collator)
    trainer = SclSltTrainer(
        model=tiny_model(tokenizer),
        args=arguments(out_dir, output_dir=str(out_dir / "run"), stage="scl", num_train_epochs=1),
        train_dataset=tiny_corpus(num_samples=NUM_SAMPLES),
        data_collator=recorder,
        processing_class=tokenizer,
        pair_selection_scores=torch.randn(
            NUM_SAMPLES, NUM_SAMPLES, generator=torch.Generator().manual_seed(5)
        ),
    )
    trainer.train()
    rank = PartialState().process_index
    (out_dir / f"rank{rank}.json").write_text(
        json.dumps({"world_size": PartialState().num_processes, "batches": recorder.batches})
    )
    model = trainer.accelerator.unwrap_model(trainer.model)
    # Parameters only: BatchNorm running statistics are per-rank buffers under DDP (rank 0's are
    # broadcast at the start of every forward), so the last step leaves each rank its own.
    torch.save({k: v.detach().cpu() for k, v in model.named_parameters()}, out_dir / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    close_process_group()  # as the CLI does: an open group can abort the exit
