"""What an agent answers to one inbound message (pure rules; the n8n call is in `agent.service`)."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_HANDOFF_KEYWORDS = ["humano", "human", "persona", "agente", "asesor", "atendente"]


def normalize(text: str) -> str:
    """Lower case without accents, so "Atención" matches "atencion"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@functools.lru_cache(maxsize=4096)
def _keyword(keyword: str) -> re.Pattern[str]:
    """A keyword as a pattern of whole words of `normalize`d text, so "persona" finds "una persona?" but not
    "personal"; the words of a phrase may be apart by any spaces or punctuation. Kept, not built again for
    every inbound message."""
    normalized = normalize(keyword).strip()
    words = re.findall(r"\w+", normalized)
    if not words:  # only symbols (an emoji): there are no word edges to respect
        return re.compile(re.escape(normalized))
    return re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, words)) + r"(?!\w)")


def _contains(text: str, keyword: str) -> bool:
    return _keyword(keyword).search(text) is not None


def within_hours(hours: dict[str, Any] | None, now: datetime) -> bool:
    if not hours:
        return True
    local = now.astimezone(ZoneInfo(hours.get("timezone") or "UTC"))
    if local.weekday() not in (hours.get("days") or []):
        return False
    start, end = time.fromisoformat(hours.get("start", "00:00")), time.fromisoformat(hours.get("end", "23:59"))
    current = local.time().replace(tzinfo=None)
    return start <= current < end if start <= end else (current >= start or current < end)  # overnight hours


@dataclass
class Decision:
    replies: list[str] = field(default_factory=list)
    hand_off: bool = False
    out_of_hours: bool = False
    ask_flow: bool = False  # N8N mode: the reply comes from the flow


def decide(agent: Any, conversation: Any, text: str | None, *, started: bool, now: datetime) -> Decision:
    """The agent's answer to one inbound message of `conversation` (already recorded)."""
    decision = Decision()
    if conversation.handed_off:
        return decision  # a person has it: quiet
    normalized = normalize(text or "")
    keywords = agent.handoff_keywords or DEFAULT_HANDOFF_KEYWORDS
    if normalized and any(_contains(normalized, k) for k in keywords):
        decision.hand_off = True
        if agent.handoff_message:
            decision.replies.append(agent.handoff_message)
        return decision
    if not within_hours(agent.business_hours, now):
        if agent.out_of_hours_message and not conversation.out_of_hours_sent:
            decision.replies.append(agent.out_of_hours_message)
            decision.out_of_hours = True
        return decision
    if started and agent.greeting:
        decision.replies.append(agent.greeting)
    if agent.mode == "N8N":
        decision.ask_flow = bool(text)
        return decision
    for rule in agent.rules or []:
        if normalized and any(_contains(normalized, k) for k in rule.get("keywords", [])):
            decision.replies.append(rule["reply"])
            break
    return decision
