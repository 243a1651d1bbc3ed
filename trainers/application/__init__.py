"""The application around the method: the recipe and its config, the CLI, the demo, evaluation,
tokenization and vocabulary trimming. Submodules are imported on use (the CLI starts fast)."""
