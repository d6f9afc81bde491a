"""The base class of every config section: unknown keys are errors, values are validated on assignment, and
a float must be finite (`train.lr=.inf` or `nan` would train nothing or diverge without a word). A key a
section has renamed (its `renamed` map: old key -> new dotted key, relative to the section) is an error
naming the new key, not just an unknown one."""

import string
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

RENAMED = "renamed_key"  # the error type the loader words as "<old key>: renamed to <new key>"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _refuse_renamed_keys(cls, data: Any) -> Any:
        if cls.renamed and isinstance(data, dict):
            for old in data:
                if old in cls.renamed:
                    raise PydanticCustomError(
                        RENAMED, "{old}: renamed to {new}", {"old": str(old), "new": cls.renamed[old]}
                    )
        return data


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
