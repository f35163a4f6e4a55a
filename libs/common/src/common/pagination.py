"""Moved to `common.api.pagination`; kept while services move over."""

from common.api.pagination import Page, PageParams, PageParamsDep

__all__ = ["Page", "PageParams", "PageParamsDep"]
