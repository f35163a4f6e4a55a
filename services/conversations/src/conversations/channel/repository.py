from __future__ import annotations

import uuid

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from common.db.repository import Repository
from conversations.models import Channel, EvolutionInstance


class ChannelRepository(Repository[Channel]):
    model = Channel

    def select(self) -> Select[tuple[Channel]]:
        return select(Channel).where(Channel.deleted_at.is_(None))  # type: ignore[union-attr]

    async def by_phone_number_id(self, phone_number_id: str) -> Channel | None:
        return await self.get_one(self.select().where(Channel.phone_number_id == phone_number_id))

    async def by_instance(self, api_url: str, instance_name: str) -> Channel | None:
        return await self.get_one(self.select().where(Channel.api_url == api_url,
                                                      Channel.instance_name == instance_name))

    async def lock_instance(self, api_url: str, instance_name: str) -> None:
        """Until this transaction ends, other creates of this instance wait (one makes it, the next finds its
        channel): two at once would both make or adopt it, and the one that lost would delete it again."""
        await self.session.execute(select(func.pg_advisory_xact_lock(
            func.hashtextextended(f"evolution-instance|{api_url}|{instance_name}", 0))))

    async def page(self, *, type: str | None, status: str | None, limit: int, offset: int
                   ) -> tuple[list[Channel], int]:
        stmt = self.select()
        if type is not None:
            stmt = stmt.where(Channel.type == type)
        if status is not None:
            stmt = stmt.where(Channel.status == status)
        return await self.paginate(stmt, limit=limit, offset=offset, order_by=[Channel.created_at.desc()])  # type: ignore[attr-defined]

    async def count_by_type_and_status(self) -> dict[tuple[str, str], int]:
        """Live channels counted per (type, status)."""
        stmt = (select(Channel.type, Channel.status, func.count()).where(Channel.deleted_at.is_(None))  # type: ignore[union-attr]
                .group_by(Channel.type, Channel.status))
        return {(type_, status): count for type_, status, count in (await self.session.execute(stmt)).all()}


class EvolutionInstanceRepository(Repository[EvolutionInstance]):
    """Evolution instances this service made and no committed channel holds yet (see `EvolutionInstance`)."""

    model = EvolutionInstance

    async def record(self, api_url: str, instance_name: str) -> None:
        await self.session.execute(insert(EvolutionInstance).values(
            id=uuid.uuid4(), api_url=api_url, instance_name=instance_name)
            .on_conflict_do_nothing(index_elements=["api_url", "instance_name"]))

    async def made_here(self, api_url: str, instance_name: str) -> bool:
        found = await self.session.execute(select(EvolutionInstance.id).where(
            EvolutionInstance.api_url == api_url, EvolutionInstance.instance_name == instance_name))
        return found.first() is not None

    async def forget(self, api_url: str, instance_name: str) -> None:
        await self.session.execute(delete(EvolutionInstance).where(
            EvolutionInstance.api_url == api_url,  # type: ignore[arg-type]
            EvolutionInstance.instance_name == instance_name))  # type: ignore[arg-type]
