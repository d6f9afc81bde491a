"""Visual prompts and the one frame conversion."""

import numpy as np
import pytest

from virtue.data.prompts import (
    box_prompt,
    coco_to_xyxy,
    grid_points,
    grid_prompt,
    mask_prompt,
    points_prompt,
    sample_points,
    to_frame,
)


def test_grid_points_are_cell_centres():
    assert grid_points(1, 100, 50) == ((50.0, 25.0),)
    pts = np.array(grid_points(9, 90, 30))
    assert pts.shape == (9, 2)
    assert sorted(set(pts[:, 0])) == [15.0, 45.0, 75.0]
    assert sorted(set(pts[:, 1])) == [5.0, 15.0, 25.0]
    assert grid_prompt(4, 10, 10).labels == (1, 1, 1, 1)


@pytest.mark.parametrize("n", [0, 2, 8, 10])
def test_grid_rejects_non_squares(n):
    with pytest.raises(ValueError):
        grid_points(n, 10, 10)


def test_to_frame_scales_each_axis():
    xy = np.array([[0, 0], [200, 100], [50, 25]])
    out = to_frame(xy, (200, 100), (1024, 1024))
    np.testing.assert_allclose(out, [[0, 0], [1024, 1024], [256, 256]])
    np.testing.assert_allclose(to_frame(out, (1024, 1024), (200, 100)), xy)


def test_box_and_coco():
    assert coco_to_xyxy([10, 20, 5, 6]) == (10, 20, 15, 26)
    with pytest.raises(ValueError):
        box_prompt(5, 5, 5, 9)


def test_sampled_points_stay_inside_the_region():
    rng = np.random.default_rng(0)
    for x, y in sample_points((10, 20, 30, 25), 50, rng):
        assert 10 <= x <= 30 and 20 <= y <= 25
    mask = np.zeros((40, 40), bool)
    mask[5:8, 30:33] = True
    for x, y in sample_points(mask, 20, rng):
        assert mask[int(y), int(x)]


def test_prompt_keys_distinguish_content():
    m = np.zeros((8, 8), bool)
    m[2, 2] = True
    m2 = m.copy()
    m2[3, 3] = True
    assert mask_prompt(m).key() != mask_prompt(m2).key()
    assert mask_prompt(m) == mask_prompt(m.copy())
    assert points_prompt([(1, 2)]).key() != points_prompt([(1, 2)], [0]).key()
    assert box_prompt(0, 0, 1, 1) != box_prompt(0, 0, 1, 2)
