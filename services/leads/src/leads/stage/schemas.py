from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


StageCode = Annotated[str, BeforeValidator(_upper),
                      StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Z][A-Z0-9_]*$")]
StageName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Position = Annotated[int, Field(ge=0, le=1_000_000)]


class StageCreate(BaseModel):
    """A new pipeline stage. Won and lost stages are always final; there is exactly one won stage."""

    model_config = ConfigDict(extra="forbid")

    code: StageCode = Field(description="Immutable identifier, e.g. NEGOTIATION")
    name: StageName
    position: Position | None = Field(default=None, description="Order in the pipeline; default: last")
    isWon: bool = False
    isLost: bool = False
    isFinal: bool | None = Field(default=None, description="No move leaves a final stage; default: isWon or isLost")

    @model_validator(mode="after")
    def _flags(self) -> StageCreate:
        if self.isWon and self.isLost:
            raise ValueError("a stage cannot be both won and lost")
        if (self.isWon or self.isLost) and self.isFinal is False:
            raise ValueError("won and lost stages are final")
        if self.isFinal is None:
            self.isFinal = self.isWon or self.isLost
        return self


class StageUpdate(BaseModel):
    """Partial update; `code` never changes. Won/lost flags change only while no lead is in the stage."""

    model_config = ConfigDict(extra="forbid")

    name: StageName | None = None
    position: Position | None = None
    isWon: bool | None = None
    isLost: bool | None = None
    isFinal: bool | None = None


class StageRead(BaseModel):
    code: str
    name: str
    position: int
    isWon: bool
    isLost: bool
    isFinal: bool
