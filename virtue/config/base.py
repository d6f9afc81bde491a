"""The base class of every config section: unknown keys are errors, values are validated on assignment, and
a float must be finite (`train.lr=.inf` or `nan` would train nothing or diverge without a word)."""

import string
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)


def _name_placeholder_only(value: str) -> str:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as e:  # a lone brace
        raise ValueError(f"{e} (write {{name}} for the experiment name)") from None
    unknown = [f for f in fields if f != "name"]
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} (only {{name}} is filled in)")
    return value


# An output folder template: `{name}` becomes the experiment's name, nothing else is filled in.
OutputDir = Annotated[str, AfterValidator(_name_placeholder_only)]
