from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from common.api import InputSchema, Schema


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


StageCode = Annotated[str, BeforeValidator(_upper),
                      StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Z][A-Z0-9_]*$")]
StageName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Position = Annotated[int, Field(ge=0, le=1_000_000)]


class StageCreate(InputSchema):
    """A new pipeline stage. Won and lost stages are always final; there is exactly one won stage."""

    code: StageCode = Field(description="Immutable identifier, e.g. NEGOTIATION")
    name: StageName
    position: Position | None = Field(default=None, description="Order in the pipeline; default: last")
    is_won: bool = False
    is_lost: bool = False
    is_final: bool | None = Field(default=None, description="No move leaves a final stage; default: isWon or isLost")

    @model_validator(mode="after")
    def _flags(self) -> StageCreate:
        if self.is_won and self.is_lost:
            raise ValueError("a stage cannot be both won and lost")
        if (self.is_won or self.is_lost) and self.is_final is False:
            raise ValueError("won and lost stages are final")
        if self.is_final is None:
            self.is_final = self.is_won or self.is_lost
        return self


class StageUpdate(InputSchema):
    """Partial update; `code` never changes. Won/lost flags change only while no lead is in the stage."""

    name: StageName | None = None
    position: Position | None = None
    is_won: bool | None = None
    is_lost: bool | None = None
    is_final: bool | None = None


class StageRead(Schema):
    code: str
    name: str
    position: int
    is_won: bool
    is_lost: bool
    is_final: bool
