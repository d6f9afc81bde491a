"""Datasets: real-format readers and validation, visual prompts, the synthetic benchmark."""
