"""WhatsApp Cloud API (Meta Graph API): send a text, check the credentials."""

from __future__ import annotations

from typing import Any

from common.retrying import RetryableCall, retry_after_seconds
from conversations.providers.errors import CredentialsRejected, ProviderError
from conversations.providers.http import Reply, json_or_empty, request

PROVIDER = "cloud_api"  # the metrics label
OUTSIDE_WINDOW = 131047
THROUGHPUT_LIMIT = 130429
PAIR_RATE_LIMIT = 131056  # too many messages to the same recipient in a short time
SPAM_RATE_LIMIT = 131048
# Meta's "throttling errors": wait and try again (4: app call rate, 80007: WABA rate, 130429: number throughput,
# 131048: spam rate limit, 131056: business-consumer pair rate). Not a refusal of the message itself.
THROTTLING = frozenset({4, 80007, THROUGHPUT_LIMIT, SPAM_RATE_LIMIT, PAIR_RATE_LIMIT})
TOKEN_EXPIRED = 190


def _error(response: Reply) -> dict[str, Any]:
    error = json_or_empty(response).get("error")
    return error if isinstance(error, dict) else {}


def _throttled(response: Reply) -> RetryableCall | None:
    if response.status_code < 400:
        return None
    error = _error(response)
    if error.get("code") in THROTTLING:
        return RetryableCall(f"throttled by Meta ({error['code']}: {error.get('message') or response.reason_phrase})",
                             status=response.status_code,
                             retry_after=retry_after_seconds(response.headers.get("retry-after")))
    return None


def _raise_for(response: Reply) -> None:
    if response.status_code < 400:
        return
    error = _error(response)
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
    message = f"{code}: {error.get('message') or response.reason_phrase}" + (f" ({details})" if details else "")
    if code == TOKEN_EXPIRED or response.status_code in (401, 403) and code in (None, TOKEN_EXPIRED, 10, 200):
        raise CredentialsRejected(message, code=code, status=response.status_code)
    raise ProviderError(message, code=code, status=response.status_code)


async def send_text(base: str, phone_number_id: str, token: str, to: str, text: str, *,
                    timeout: float) -> str:
    response = await request(PROVIDER,
        "POST", f"{base.rstrip('/')}/{phone_number_id}/messages", timeout=timeout, check=_throttled,
        headers={"Authorization": f"Bearer {token}"},
        json={"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
              "text": {"preview_url": False, "body": text}})
    _raise_for(response)
    messages = json_or_empty(response).get("messages") or [{}]
    return str(messages[0].get("id") or "")


async def check(base: str, phone_number_id: str, token: str, *, timeout: float) -> dict[str, Any]:
    """The phone number's details: proves the token and the number id."""
    response = await request(PROVIDER, "GET", f"{base.rstrip('/')}/{phone_number_id}", timeout=timeout, attempts=2,
                             headers={"Authorization": f"Bearer {token}"},
                             params={"fields": "display_phone_number,verified_name"})
    _raise_for(response)
    return json_or_empty(response)
