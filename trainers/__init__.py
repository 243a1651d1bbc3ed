"""The SCL training method: Pair Selection, curriculum sampling, selective contrastive loss, Trainer."""
