"""Run by tests/test_distributed_resume.py under `accelerate launch` with 2 CPU processes (gloo).

``first``: train stage scl for EPOCHS epochs uninterrupted (OUT_DIR/straight), then again from the
start but stopped after step STOP_STEP, inside the last epoch, with a checkpoint there
(OUT_DIR/stopped). ``resume``: a fresh launch resumes the stopped run from that checkpoint. Each
rank writes the names of the samples of every batch it collated (per run) and the final
parameters of each run to OUT_DIR/{mode}-rank{r}.*.
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
    StopAtStep,
    arguments,
    collators,
    tiny_corpus,
    tiny_model,
)
from trainers.application.recipe import close_process_group
from trainers.application.tokenization import train_tokenizer
from trainers.training.trainer import SclSltTrainer

NUM_SAMPLES = 16  # batch 4 on 2 ranks: 2 steps per epoch
EPOCHS = 3
STOP_STEP = 5  # the first step of epoch 2 (0-based): the resume skips one batch of that epoch
SCHEDULE = "linear"  # alpha 0, 1/3, 2/3


def scores() -> torch.Tensor:
    return torch.randn(NUM_SAMPLES, NUM_SAMPLES, generator=torch.Generator().manual_seed(5))


def train(out_dir: Path, run: str, stop: bool = False, resume: bool = False) -> dict:
    tokenizer = train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")
    _, eval_collator = collators(tokenizer)
    recorder = RecordingCollator(eval_collator)  # no augmentation: see tests/test_trainer.py
    saving = {"save_strategy": "steps", "save_steps": STOP_STEP} if stop else {}
    trainer = SclSltTrainer(
        model=tiny_model(tokenizer),
        args=arguments(
            out_dir,
            output_dir=str(out_dir / run),
            stage="scl",
            num_train_epochs=EPOCHS,
            curriculum_schedule=SCHEDULE,
            **saving,
        ),
        train_dataset=tiny_corpus(num_samples=NUM_SAMPLES),
        data_collator=recorder,
        processing_class=tokenizer,
        pair_selection_scores=scores(),
        callbacks=[StopAtStep(STOP_STEP)] if stop else [],
    )
    checkpoint = out_dir / run / f"checkpoint-{STOP_STEP}"
    trainer.train(resume_from_checkpoint=str(checkpoint) if resume else None)
    model = trainer.accelerator.unwrap_model(trainer.model)
    # Parameters only: BatchNorm running statistics are per-rank buffers under DDP.
    parameters = {k: v.detach().cpu().clone() for k, v in model.named_parameters()}
    return {"batches": recorder.batches, "global_step": trainer.state.global_step, "parameters": parameters}


def main(out_dir: Path, mode: str) -> None:
    if mode == "first":
        runs = {"straight": train(out_dir, "straight"), "stopped": train(out_dir, "stopped", stop=True)}
    else:
        runs = {"resumed": train(out_dir, "stopped", resume=True)}
    rank = PartialState().process_index
    (out_dir / f"{mode}-rank{rank}.json").write_text(
        json.dumps({run: {k: v for k, v in out.items() if k != "parameters"} for run, out in runs.items()})
    )
    torch.save({run: out["parameters"] for run, out in runs.items()}, out_dir / f"{mode}-rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
    close_process_group()  # as the CLI does: an open group can abort the exit
