"""Evaluation: encoding, ranking metrics, the SCaR and MMEB protocols."""
