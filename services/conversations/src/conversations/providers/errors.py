"""What a provider call can end in, beyond success: the outbound worker decides from these."""

from __future__ import annotations


class ProviderError(Exception):
    """The provider refused the call for good (bad request, outside the 24 h window, ...)."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class CredentialsRejected(ProviderError):
    """The token or key is wrong or expired (Cloud API 190, HTTP 401/403): the channel goes to ERROR."""


class ProviderUnavailable(Exception):
    """Down, throttled or failing (network error, 429, 5xx, Cloud API throttling codes): try again later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
