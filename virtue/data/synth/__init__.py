"""The embedded benchmark: a seeded procedural scene generator, captions with verified distractors,
the SCaR-synth and MMEB-synth writers (real schemas), and the two ground-truth oracles."""
