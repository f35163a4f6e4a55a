"""What every service's HTTP layer shares: the schema base and pagination."""

from common.api.pagination import (
    InvalidCursor,
    KeysetPage,
    KeysetPageParamsDep,
    Page,
    PageParams,
    PageParamsDep,
    Total,
)
from common.api.schemas import InputSchema, Schema

__all__ = ["InputSchema", "InvalidCursor", "KeysetPage", "KeysetPageParamsDep", "Page", "PageParams", "PageParamsDep",
           "Schema", "Total"]
