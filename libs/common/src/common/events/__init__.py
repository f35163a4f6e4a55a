from common.events.catalogue import (
    ALL_TOPICS,
    EVENT_TYPES,
    EventType,
    build_event,
    event_type,
    matches,
    patterns_matching,
    topic_for_source,
    valid_pattern,
)
from common.events.envelope import Envelope, format_timestamp

__all__ = ["ALL_TOPICS", "EVENT_TYPES", "Envelope", "EventType", "build_event", "event_type",
           "format_timestamp", "matches", "patterns_matching", "topic_for_source", "valid_pattern"]
