"""The schema bases and the page helper: camelCase out, camelCase only in, unknown fields refused."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from common.api import InputSchema, Page, PageParams, PageParamsDep, Schema
from common.errors import install_problem_handlers
from common.testing.checks import assert_problem


class ThingRead(Schema):
    id: uuid.UUID
    display_name: str
    created_at: datetime
    owner_id: uuid.UUID | None


class ThingCreate(InputSchema):
    display_name: str
    owner_id: uuid.UUID | None = None


@dataclass
class ThingRow:  # stands for an ORM row: read through its attributes
    id: uuid.UUID
    display_name: str
    created_at: datetime
    owner_id: uuid.UUID | None = None


def _row(name: str = "A thing") -> ThingRow:
    return ThingRow(uuid.uuid4(), name, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def test_a_response_is_read_from_attributes_and_written_in_camel_case():
    row = _row()
    dumped = ThingRead.model_validate(row).model_dump(mode="json")
    assert dumped == {"id": str(row.id), "displayName": "A thing", "createdAt": "2026-01-02T03:04:05Z",
                      "ownerId": None}


def test_a_request_takes_camel_case_only_and_refuses_unknown_fields():
    assert ThingCreate.model_validate({"displayName": "x"}).display_name == "x"
    for body in ({"display_name": "x"}, {"displayName": "x", "colour": "red"}):
        with pytest.raises(ValidationError):
            ThingCreate.model_validate(body)


def test_a_request_dumps_its_attribute_names_which_the_service_hands_to_its_models():
    body = ThingCreate.model_validate({"displayName": "x"})
    assert body.model_dump(exclude_unset=True) == {"display_name": "x"}


def test_page_of_converts_each_row_with_the_item_type_or_with_read():
    rows = [_row("one"), _row("two")]
    page = Page[ThingRead].of(rows, 7, PageParams(limit=2, offset=4))
    assert [item.display_name for item in page.items] == ["one", "two"]
    assert (page.total, page.limit, page.offset) == (7, 2, 4)
    assert page.model_dump(mode="json")["items"][0]["displayName"] == "one"
    custom = Page[ThingRead].of(rows, 2, PageParams(limit=20, offset=0),
                                read=lambda r: ThingRead.model_validate(r).model_copy(update={"display_name": "x"}))
    assert [item.display_name for item in custom.items] == ["x", "x"]
    with pytest.raises(TypeError):
        Page.of(rows, 2, PageParams(limit=20, offset=0))


@pytest.fixture
async def client():
    app = FastAPI()
    install_problem_handlers(app)
    stored: list[ThingRow] = []

    @app.post("/things", response_model=ThingRead, status_code=201)
    async def create(body: ThingCreate) -> ThingRead:
        stored.append(ThingRow(uuid.uuid4(), body.display_name, datetime.now(UTC), body.owner_id))
        return ThingRead.model_validate(stored[-1])

    @app.get("/things", response_model=Page[ThingRead])
    async def listing(page: PageParamsDep) -> Page[ThingRead]:
        return Page[ThingRead].of(stored[page.offset:page.offset + page.limit], len(stored), page)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_through_fastapi_the_json_is_camel_case_and_bad_bodies_are_422_problems(client):
    owner = str(uuid.uuid4())
    created = await client.post("/things", json={"displayName": "Box", "ownerId": owner})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"id", "displayName", "createdAt", "ownerId"}
    assert created.json()["ownerId"] == owner
    assert_problem(await client.post("/things", json={"display_name": "Box"}), 422)
    assert_problem(await client.post("/things", json={"displayName": "Box", "admin": True}), 422)
    page = (await client.get("/things", params={"limit": 1})).json()
    assert page["total"] == 1 and page["limit"] == 1 and page["items"][0]["displayName"] == "Box"
    assert_problem(await client.get("/things", params={"limit": 0}), 422)
