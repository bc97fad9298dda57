"""The building blocks of params.yaml's sections: numbers as DVC records them, and a section
that refuses unknown keys.

``pipeline/config.py`` builds the data and visualize sections and the whole file from them,
``pipeline/model.py`` the train section, the estimator's arguments.
"""

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _number_only(value: Any) -> Any:
    # pydantic's lax mode would read ``true`` as 1 and "12" as 12. DVC records both as what
    # they are, a boolean and a string: a number here is a YAML number, nothing else.
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    if isinstance(value, str):
        raise ValueError("expected a number, not a string (remove the quotes)")
    return value


Float = Annotated[float, BeforeValidator(_number_only), Field(allow_inf_nan=False)]
Int = Annotated[int, BeforeValidator(_number_only)]


class Section(BaseModel):
    """A section of params.yaml: an unknown key is an error, and it is frozen once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)
