"""The |S| rule (a square whose root divides SAM-2's map side) is one function, and the config validator, the
builder's check and the connector all follow it: for every |S| and map side they accept exactly the same cases."""

import pytest
from pydantic import ValidationError

from virtue.config.model import ModelConfig, seg_token_side
from virtue.models.connector import Connector


def test_the_rule():
    assert seg_token_side(16, 8) == 4 and seg_token_side(64, 64) == 8 and seg_token_side(1, 5) == 1
    for tokens, side in [(9, 8), (15, 16), (0, 8), (256, 8)]:
        with pytest.raises(ValueError, match=f"seg_tokens {tokens}: needs a square root that divides"):
            seg_token_side(tokens, side)


def _config_accepts(tokens: int, image_size: int) -> bool:
    base = {"vlm": {"preset": "qwen2vl-tiny"}, "sam": {"preset": "sam2-tiny"}, "variant": "virtue"}
    try:
        ModelConfig(**base, seg_tokens=tokens, sam_image_size=image_size)
    except ValidationError:
        return False
    return True


def _connector_accepts(tokens: int, map_side: int) -> bool:
    try:
        Connector(channels=4, map_side=map_side, seg_tokens=tokens, out_dim=8)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("image_size", [128, 256, 384])
def test_config_and_connector_agree_with_the_rule(image_size):
    side = image_size // 16
    for tokens in [1, 4, 9, 16, 25, 36, 64, 144, 256, 15]:
        try:
            seg_token_side(tokens, side)
            expected = True
        except ValueError:
            expected = False
        assert _config_accepts(tokens, image_size) is expected, (tokens, image_size)
        assert _connector_accepts(tokens, side) is expected, (tokens, side)
