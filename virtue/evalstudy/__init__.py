"""Evaluation-only studies of the main path's trained checkpoints (sweeps/studies/<name>.yaml with `kind:
eval`): `prompt_noise` (how the embedding degrades when the visual prompt is off) and `point_sampling`
(where the points of an unprompted query come from). Nothing is trained; every condition is compared with
its baseline on the same queries (paired), as the ablation studies compare their cells."""
