"""Training with the method: ``SclSltTrainer`` and its arguments, and LoRA through peft.

Submodules are imported on use (``trainers.training.trainer``, ``trainers.training.lora``):
importing this package loads neither ``transformers.Trainer`` nor peft.
"""
