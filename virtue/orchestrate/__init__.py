"""Orchestration: launcher (in-process / local / Slurm), MLflow tracking, Optuna sweeps."""
