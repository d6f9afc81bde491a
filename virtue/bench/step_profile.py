"""(g) Where one training step's time goes, and what torch.compile does to it, at the study budget.

The issue's step lever says: profile one step of the tiny model first, then act. One step of the trainer's own
`_step_loss` (study batch and hard negatives, frozen features from a warm cache, one torch thread) is split
into its phases by a clock around the trainer's Encoder: `prepare` (the processor's token ids and the
cache lookup: the Python data preparation), `forward` (the trained LLM and connector), `backward` (the rest
of `_step_loss`: loss and backward) and the optimizer update. Beside the phases:
- padding: the share of the step's token positions that are padding, i.e. the most that less padding could
  save in the LLM;
- torch.compile: the same steps with every LLM decoder layer compiled (dynamic shapes, the steps' lengths
  vary), the two variants taking turns; the compile warm-up is reported apart from the steady-state step,
  and both are turned into the training minutes of one study cell.
Every batch here is a SCaR-synth batch (the micro workspace trains on SCaR-synth only), the costlier of the two
sources: the main path and the cells mix about 1300 of them with 400 cheaper MMEB-synth batches, so these
minutes are an upper bound on a cell's training."""

from __future__ import annotations

import time
from collections import Counter

from ..train.compile import CompiledLayers
from ..train.loop import Encoder
from .common import BenchWorkspace, Side, comparison, log, median, skipped
from .levers import step_setup

PHASES = ("prepare", "forward", "backward", "optimizer")


class PhaseClock(Encoder):
    """The trainer's Encoder, timing its two calls and counting real and padded token positions."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()

    def prepare(self, sides, processed=None, *, features=False):
        t = time.perf_counter()
        out = super().prepare(sides, processed, features=features)
        self.seconds["prepare"] += time.perf_counter() - t
        mask = out[0].attention_mask  # [B, L], 1 = real token
        self.tokens["real"] += int(mask.sum())
        self.tokens["positions"] += mask.numel()
        return out

    def forward(self, prepared):
        t = time.perf_counter()
        out = super().forward(prepared)
        self.seconds["forward"] += time.perf_counter() - t
        return out


def _steps(ws: BenchWorkspace, dtype: str, batch: int, negatives: int, steps: int, backend: str | None):
    """(per-step phase seconds, steady-state step seconds, warm-up seconds, padding share). backend: None for
    eager, else the torch.compile backend each decoder layer is compiled with."""
    cfg, embedder, clock, optimizer, batches = step_setup(ws, dtype, batch, negatives, steps, PhaseClock)
    with CompiledLayers(embedder, backend or "off").active():  # as the trainer compiles with train.compile
        return _timed_steps(cfg, clock, optimizer, batches)


def _timed_steps(cfg, clock, optimizer, batches):
    from ..train.loop import _step_loss

    warm = 2  # eager: allocator and caches; compiled: the first compile and the recompile for dynamic shapes
    step_s, phases, warmup = [], [], 0.0
    clock.tokens.clear()  # padding over every step's batches (the setup's cache filling left out)
    for i, b in enumerate(batches):
        clock.seconds.clear()
        t = time.perf_counter()
        _step_loss(clock, b, cfg.train)
        t_opt = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        end = time.perf_counter()
        if i < warm:
            warmup += end - t
            continue
        step_s.append(end - t)
        s = clock.seconds
        backward = (t_opt - t) - s["prepare"] - s["forward"]
        phases.append({"prepare": s["prepare"], "forward": s["forward"], "backward": backward,
                       "optimizer": end - t_opt})  # fmt: skip
    padding = 1 - clock.tokens["real"] / clock.tokens["positions"]
    return phases, step_s, warmup, padding


def step_profile(ws: BenchWorkspace, *, repeats: int, steps: int, budget: dict, dtype: str, quick: bool) -> list[dict]:
    """dtype: the backbones' dtype the study cells train in (model.dtype=auto's choice on this CPU). quick:
    torch.compile with the aot_eager backend (the same graph capture, no C++ code generation), for smoke runs."""
    batch, negatives = budget["batch_size"], budget["hard_negatives"]
    backend = "aot_eager" if quick else "inductor"
    eager, compiled = Side("training step, eager", "s"), Side(f"training step, decoder layers compiled ({backend})",
                                                              "s")  # fmt: skip
    phases, padding, warmups, compile_error = [], [], {"eager": [], "compiled": []}, None
    for r in range(repeats):
        for variant in ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager"):
            if variant == "compiled" and compile_error:
                continue
            log(f"step profile: {steps} training steps, {variant} ({r + 1}/{repeats})")
            try:
                p, s, w, pad = _steps(ws, dtype, batch, negatives, steps, None if variant == "eager" else backend)
            except Exception as e:  # noqa: BLE001 - inductor needs a C++ compiler; the profile stands without it
                if variant == "eager":
                    raise
                compile_error = f"torch.compile failed here: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                continue
            (eager if variant == "eager" else compiled).values.extend(s)
            warmups[variant].append(w)
            if variant == "eager":
                phases += p
                padding.append(pad)
    step = median(eager.values)
    profile = {
        "name": "train_step_profile",
        "status": "measured",
        "unit": "s per step (medians over every timed step)",
        "batch_size": batch,
        "hard_negatives": negatives,
        "dtype": dtype,
        "step_s": step,
        "phases_s": {k: median([p[k] for p in phases]) for k in PHASES},
        "phase_share": {k: median([p[k] for p in phases]) / step for k in PHASES},
        "padding_share": median(padding),
        "method": (__doc__ or "").replace("\n", " "),
    }
    if compile_error:
        return [profile, skipped("train_step_compile", compile_error)]
    minutes = {  # the training minutes of one study cell, the warm-up (median of the repeats') paid once
        v: (budget["steps"] * median(side.values) + median(warmups[v])) / 60
        for v, side in (("eager", eager), ("compiled", compiled))
    }
    return [
        profile,
        comparison("train_step_compile", compiled, eager, target=None, higher_is_better=False,
                   method=f"seconds of one steady-state training step with each LLM decoder layer under "
                   f"torch.compile(backend={backend}, dynamic=True) against eager, the two taking turns; the first "
                   "2 steps of each (compilation, recompilation for dynamic shapes) are the warm-up",
                   backend=backend, warmup_s={k: median(v) for k, v in warmups.items()},
                   cell_training_minutes=minutes, steps_per_cell=budget["steps"]),  # fmt: skip
    ]
