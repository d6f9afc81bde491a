"""(a) GradCache memory: peak memory of one training step at a large global batch with GradCache chunks
against a small batch without GradCache.

Method: the step (input processing, frozen features, forward, loss, backward; the optimizer update is the
same for both and left out) runs under torch.profiler with profile_memory=True. Every tensor allocation
and free on the CPU allocator is an event with a signed byte count; their running sum in time order is the
memory held by tensors created during the step, and its maximum is the step's peak. Model weights, the
optimizer state and Python objects are outside it (they do not depend on the batch). The count is exact
and the same run to run, unlike process RSS, which glibc's allocator keeps high after frees."""

from __future__ import annotations

from .common import BenchWorkspace, Side, comparison, log


def step_peak_bytes(encoder, batch, tc) -> int:
    """Peak bytes held by tensors allocated during one forward+backward of `batch` (see module doc)."""
    from torch.profiler import ProfilerActivity, profile

    from ..train.loop import _step_loss

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step_loss(encoder, batch, tc)
    encoder.embedder.zero_grad(set_to_none=True)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak


def gradcache_memory(ws: BenchWorkspace, *, big_batch: int, chunk: int, repeats: int) -> dict:
    from ..models import build_embedder
    from ..train.distributed import seed_everything
    from ..train.loop import Encoder, load_train_pairs
    from ..train.sampler import SourceBatchSampler

    big = ws.config(f"train.batch_size={big_batch}", f"train.gradcache_chunk={chunk}", "train.feature_cache=false")
    small = ws.config(f"train.batch_size={chunk}", "train.gradcache_chunk=0", "train.feature_cache=false")
    pairs = load_train_pairs(big)
    seed_everything(0)
    embedder, processor = build_embedder(big.model)
    embedder.train()
    encoder = Encoder(embedder, processor, "cpu", None)
    k = big.train.hard_negatives
    big_batch_ = SourceBatchSampler(pairs, big_batch, 0, k).batch(0)
    small_batch = SourceBatchSampler(pairs, chunk, 0, k).batch(0)
    step_peak_bytes(encoder, small_batch, small.train)  # warm-up: lazy initialisations stay out of both
    mib = 2**20
    small_chunked = ws.config(f"train.batch_size={chunk}", f"train.gradcache_chunk={chunk}").train
    a = Side(f"batch {big_batch}, GradCache chunks of {chunk}", "MiB")
    b = Side(f"batch {chunk}, no GradCache", "MiB")
    c = Side(f"batch {chunk}, GradCache chunks of {chunk}", "MiB")
    for r in range(repeats):
        log(f"gradcache memory: repeat {r + 1}/{repeats}")
        b.values.append(step_peak_bytes(encoder, small_batch, small.train) / mib)
        c.values.append(step_peak_bytes(encoder, small_batch, small_chunked) / mib)
        a.values.append(step_peak_bytes(encoder, big_batch_, big.train) / mib)
    rows = f"{big_batch} queries + {big_batch * (1 + k)} targets vs {chunk} queries + {chunk * (1 + k)} targets"
    return comparison(
        "gradcache_memory",
        a,
        b,
        target=1.3,
        higher_is_better=False,
        method=(__doc__ or "").split("\n\n", 1)[1].replace("\n", " ") + f" Rows per step: {rows}.",
        hard_negatives=k,
        # Without GradCache the batch-8 step forwards its 8*(1+k) targets in one graph, while GradCache
        # never holds more than `chunk` rows' activations: the same batch with chunks shows the pure growth.
        same_batch_chunked=c.as_dict(),
        growth_over_same_batch_chunked=a.as_dict()["median"] / c.as_dict()["median"],
    )
