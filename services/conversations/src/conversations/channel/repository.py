from __future__ import annotations

from sqlalchemy import Select, func, select

from common.db.repository import Repository
from conversations.models import Channel


class ChannelRepository(Repository[Channel]):
    model = Channel

    def select(self) -> Select[tuple[Channel]]:
        return select(Channel).where(Channel.deleted_at.is_(None))  # type: ignore[union-attr]

    async def by_phone_number_id(self, phone_number_id: str) -> Channel | None:
        return await self.get_one(self.select().where(Channel.phone_number_id == phone_number_id))

    async def by_instance(self, api_url: str, instance_name: str) -> Channel | None:
        return await self.get_one(self.select().where(Channel.api_url == api_url,
                                                      Channel.instance_name == instance_name))

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
