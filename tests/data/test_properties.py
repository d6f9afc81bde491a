"""Property tests of the caption generator: over random scenes, every distractor is false for the target and
differs from the ground truth in exactly one element; the GT is true for the target and no other object."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtue.data.synth.captions import CLEAR, MARGIN, make_query, offset, true_for
from virtue.data.synth.oracles import combined_survivors, crop_survivors, global_survivors
from virtue.data.synth.scar import SUBSETS
from virtue.data.synth.scene import generate_scene
from virtue.data.synth.vocab import HELD_OUT, parse_caption

PROFILES = list(SUBSETS.values())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, len(PROFILES) - 1), size=st.sampled_from([96, 128]))
def test_distractors_false_and_one_element_changed(seed, which, size):
    rng = np.random.default_rng(seed)
    profile = PROFILES[which]
    scene = generate_scene(rng, profile, size)
    assert len({(o.desc.colour, o.desc.shape) for o in scene.objects}) == len(scene.objects)
    assert all((o.desc.colour, o.desc.shape) not in HELD_OUT for o in scene.objects)
    for t, target in enumerate(scene.objects):
        q = make_query(scene, t, rng, profile.distractors)
        if q is None:
            continue
        gt = q.captions[0]
        assert len(q.captions) == 10 and len({c.text() for c in q.captions}) == 10
        assert true_for(gt, scene, target)
        assert [o for o in scene.objects if true_for(gt, scene, o)] == [target]
        assert offset(gt.pred, target, scene.objects[q.ref], size) > CLEAR  # only clear relations in the GT
        for cap, kind in zip(q.captions[1:], q.kinds[1:], strict=True):
            assert not true_for(cap, scene, target)
            changed = [a != b for a, b in zip(cap.elements(), gt.elements(), strict=True)]
            assert sum(changed) == 1
            element = {"object_in_image": 0, "object_absent": 0, "relation": 1, "scene": 2}[kind]
            assert changed[element]
            if kind == "relation":  # the opposite clearly holds: no caption in the ambiguous band
                ref = next(o for o in scene.objects if o.desc == cap.ref)
                assert offset(cap.pred, target, ref, size) < -MARGIN
            if kind.startswith("object"):
                assert any(o.desc == cap.obj for o in scene.objects) == (kind == "object_in_image")
            assert parse_caption(cap.text()) == cap
        # the oracles: each keeps the GT, together they keep only the GT
        g, c = global_survivors(q.captions, scene), crop_survivors(q.captions, scene, target)
        assert g[0] and c[0]
        assert combined_survivors(q.captions, scene, target) == [True] + [False] * 9
        assert [a and b for a, b in zip(g, c, strict=True)] == [True] + [False] * 9  # the halves complement
