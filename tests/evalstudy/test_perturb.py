"""Property tests of the prompt perturbations: every one hits the IoU it is asked for (boxes exactly, masks at
the nearest whole-pixel radius), stays inside the image, and clicks land where their names say."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from virtue.evalstudy import perturb
from virtue.evalstudy.prompt_noise import with_box_text

SIZE = (128, 96)


@st.composite
def boxes(draw):
    w = draw(st.floats(4, 60))
    h = draw(st.floats(4, 60))
    x1 = draw(st.floats(0, SIZE[0] - w))
    y1 = draw(st.floats(0, SIZE[1] - h))
    return (x1, y1, x1 + w, y1 + h)


targets = st.sampled_from([0.9, 0.75, 0.5, 0.3])


@settings(max_examples=200, deadline=None)
@given(boxes(), targets, st.integers(0, 2**31))
def test_moved_box_has_the_target_iou_and_stays_inside(box, t, seed):
    out = perturb.shifted_box(box, t, SIZE, np.random.default_rng(seed))
    if out is None:  # only when no direction leaves room: the box then nearly fills the image
        assert (box[2] - box[0]) * (box[3] - box[1]) > 0.2 * SIZE[0] * SIZE[1]
        return
    assert abs(perturb.box_iou(box, out) - t) < 1e-5
    assert out[0] >= 0 and out[1] >= 0 and out[2] <= SIZE[0] and out[3] <= SIZE[1]
    assert abs((out[2] - out[0]) - (box[2] - box[0])) < 1e-9  # moved, not resized


@settings(max_examples=200, deadline=None)
@given(boxes(), targets)
def test_shrunk_and_grown_boxes_have_the_target_iou(box, t):
    small = perturb.scaled_box(box, t, SIZE, grow=False)
    assert abs(perturb.box_iou(box, small) - t) < 1e-9
    assert small[0] >= box[0] and small[2] <= box[2]  # inside the original
    big = perturb.scaled_box(box, t, SIZE, grow=True)
    if big is None:  # the whole image overlaps the box more than t
        assert perturb.box_iou(box, (0, 0, *SIZE)) > t
        return
    assert abs(perturb.box_iou(box, big) - t) < 1e-5
    assert big[0] <= box[0] and big[2] >= box[2] and big[0] >= 0 and big[3] <= SIZE[1]


def _disc(cx, cy, r, shape=(96, 128)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


@settings(max_examples=60, deadline=None)
@given(st.integers(20, 100), st.integers(20, 70), st.integers(4, 18), st.sampled_from([0.9, 0.75, 0.5]))
def test_eroded_and_dilated_masks_take_the_radius_nearest_the_target(cx, cy, r, t):
    mask = _disc(cx, cy, r)
    dist_in = ndimage.distance_transform_edt(mask)
    dist_out = ndimage.distance_transform_edt(~mask)
    for dilate in (False, True):
        out = perturb.morphed_mask(mask, t, dilate=dilate)
        if out is None:
            assert not dilate
            continue
        assert (out >= mask).all() if dilate else (out <= mask).all()
        candidates = [(mask | (dist_out <= k)) if dilate else (dist_in > k) for k in range(1, 33)]
        ious = [perturb.mask_iou(mask, c) for c in candidates if c.any()]
        got = perturb.mask_iou(mask, out)
        assert abs(got - t) <= min(abs(i - t) for i in ious) + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.integers(20, 100), st.integers(20, 70), st.integers(3, 18), st.integers(0, 2**31))
def test_clicks_land_inside_on_the_outline_and_outside(cx, cy, r, seed):
    mask = _disc(cx, cy, r)
    rng = np.random.default_rng(seed)
    x, y = perturb.centre_click(mask)
    assert mask[int(y), int(x)] and abs(x - 0.5 - cx) <= 1 and abs(y - 0.5 - cy) <= 1
    x, y = perturb.edge_click(mask, rng)
    assert mask[int(y), int(x)] and not ndimage.binary_erosion(mask)[int(y), int(x)]
    x, y = perturb.outside_click(mask, rng, gap=2)
    d = ndimage.distance_transform_edt(~mask)[int(y), int(x)]
    assert not mask[int(y), int(x)] and 1 < d <= 2


def test_bad_targets_are_refused():
    with pytest.raises(ValueError, match="target IoU"):
        perturb.shifted_box((0, 0, 10, 10), 1.0, SIZE, np.random.default_rng(0))
    with pytest.raises(ValueError, match="target IoU"):
        perturb.scaled_box((0, 0, 10, 10), 0.0, SIZE, grow=True)


def test_the_query_text_states_the_new_box():
    text = "Find the caption...\nReferring object bbox: [10, 20, 30, 40]"
    assert with_box_text(text, (1.4, 2.6, 30.0, 41.5)).endswith("bbox: [1, 3, 30, 42]")
    assert with_box_text("no box here", (1, 2, 3, 4)) == "no box here"
