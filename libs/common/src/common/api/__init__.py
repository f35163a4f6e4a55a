"""What every service's HTTP layer shares: the schema base and pagination."""

from common.api.pagination import Page, PageParams, PageParamsDep
from common.api.schemas import InputSchema, Schema

__all__ = ["InputSchema", "Page", "PageParams", "PageParamsDep", "Schema"]
