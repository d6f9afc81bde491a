"""`virtue bench`: what the optimisations buy, measured side by side in one process on the tiny model.

Each comparison reports both absolute numbers (median over repeats, every repeat kept) and their ratio, with
the issue's target beside it. See `run.run_bench` for the list and each module for its method."""
