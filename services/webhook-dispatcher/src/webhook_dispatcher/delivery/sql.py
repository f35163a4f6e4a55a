"""The hand-written statements behind `DeliveryRepository`'s hot paths (consume, claim, record) and its
housekeeping. Each is one fixed statement, rows passed as arrays (`unnest`), so PostgreSQL and asyncpg
reuse one prepared statement whatever the batch size. Only `repository.py` uses them."""

from __future__ import annotations

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Uuid

PACE = text("""UPDATE webhook_deliveries AS d
SET next_attempt_at = now() + make_interval(secs => (p.rn - 1) / CAST(:rate AS double precision))
FROM (SELECT d2.id, row_number() OVER (ORDER BY e.occurred_at, d2.seq) AS rn
      FROM webhook_deliveries AS d2 JOIN webhook_events AS e ON e.id = d2.event_id
      WHERE d2.recovery_id = :recovery_id AND d2.status = 'PENDING') AS p
WHERE d.id = p.id
""")

# Due work, at most `per_endpoint` rows per ACTIVE endpoint (so one endpoint's backlog never fills a
# claim), skipping rows another replica holds (lease) or is locking right now (SKIP LOCKED). For
# `ordered` endpoints only the head of each aggregate's queue is due.
CLAIM = text("""
WITH picked AS (
    SELECT d.id
    FROM webhook_endpoints e
    CROSS JOIN LATERAL (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.endpoint_id = e.id AND d.status = 'PENDING' AND d.next_attempt_at <= now()
          AND (d.lease_until IS NULL OR d.lease_until < now())
          AND (NOT e.ordered OR NOT EXISTS (
                SELECT 1 FROM webhook_deliveries p
                WHERE p.endpoint_id = d.endpoint_id AND p.status = 'PENDING'
                  AND p.ordering_key = d.ordering_key AND p.seq < d.seq))
        ORDER BY d.next_attempt_at
        LIMIT :per_endpoint
    ) d
    WHERE e.status = 'ACTIVE' AND NOT (e.id = ANY(:busy))
      AND NOT EXISTS (SELECT 1 FROM webhook_endpoint_owners o  -- another replica delivers to it
                      WHERE o.endpoint_id = e.id AND o.owner <> :owner AND o.lease_until > now())
    LIMIT :limit
), locked AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM picked) AND d.status = 'PENDING'
      AND (d.lease_until IS NULL OR d.lease_until < now())
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET lease_until = now() + make_interval(secs => :lease), lease_owner = :owner
FROM locked, webhook_events ev
WHERE d.id = locked.id AND ev.id = d.event_id
RETURNING d.id, d.endpoint_id, d.event_id, d.event_type, d.attempts, d.cycle_attempts, ev.body,
          ev.occurred_at, ev.traceparent, ev.tracestate
""").bindparams(bindparam("busy", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid),
                bindparam("lease", type_=Float))

# A delivery waiting for its next retry, or behind its aggregate's head on an ordered endpoint, or for
# a paused endpoint, is not late: only what the claim would take now counts as lag.
BACKLOG = text("""
SELECT count(*) AS pending,
       COALESCE(EXTRACT(EPOCH FROM now() - min(d.created_at)), 0) AS oldest_age,
       count(*) FILTER (WHERE sendable) AS due,
       COALESCE(EXTRACT(EPOCH FROM now() - min(d.next_attempt_at) FILTER (WHERE sendable)), 0) AS due_lag
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id
CROSS JOIN LATERAL (SELECT e.status = 'ACTIVE' AND d.next_attempt_at <= now()
    AND (NOT e.ordered OR NOT EXISTS (
        SELECT 1 FROM webhook_deliveries p
        WHERE p.endpoint_id = d.endpoint_id AND p.status = 'PENDING'
          AND p.ordering_key = d.ordering_key AND p.seq < d.seq)) AS sendable) s
WHERE d.status = 'PENDING'
""")
# Hot paths: one fixed statement per batch, rows passed as arrays (`unnest`), so PostgreSQL and
# asyncpg reuse one prepared statement whatever the batch size.

# A consumed batch in ONE statement, run outside any explicit transaction (one round trip instead of
# BEGIN, inbox, events, deliveries, COMMIT; a statement is atomic by itself): the inbox rows, the events
# seen for the first time (`fresh`), and one delivery per (fresh routable event, ACTIVE endpoint whose
# subscriptions hold one of the patterns that match the event's name; `patterns` is that list as a JSON
# array, see `common.events.patterns_matching`). Who receives is read from the database in the same
# statement (never from a cache), once per distinct name. Deliveries are inserted in event order, so
# the `seq` of an aggregate's events follows the order they were consumed in (ordered endpoints).
# `leased` ones are already claimed by the consuming replica (`owner`), as many per endpoint as its lane
# has room for (`lane_ids`/`lane_room`; an endpoint without a lane: `room`). Left to the poller: the rest
# (they wait in the database until the lane has room, never leased and handed back) and an ordered
# endpoint's (the poller hands out the head of each aggregate's queue). Returns one row per fresh event
# and delivery (a fresh event without any delivery: NULLs).
ROUTE = text("""
WITH batch AS (
    SELECT * FROM unnest(:ids, :event_types, :routable, :patterns, :occurred_at, :tenant_ids, :ordering_keys,
                         :bodies, :traceparents, :tracestates) WITH ORDINALITY
         AS u(id, event_type, routable, patterns, occurred_at, tenant_id, ordering_key, body, traceparent,
              tracestate, n)
), fresh AS (
    INSERT INTO inbox (consumer, event_id, event_type)
    SELECT :consumer, b.id, left(b.event_type, 100) FROM batch b
    ON CONFLICT DO NOTHING
    RETURNING event_id
), kept AS (
    INSERT INTO webhook_events (id, event_type, occurred_at, tenant_id, ordering_key, body, traceparent,
                                tracestate, created_at, updated_at)
    SELECT b.id, left(b.event_type, 100), b.occurred_at, b.tenant_id, b.ordering_key, b.body, b.traceparent,
           b.tracestate, now(), now()
    FROM batch b WHERE b.routable AND b.id IN (SELECT event_id FROM fresh)
    ON CONFLICT (id) DO NOTHING
), routes AS (  -- once per distinct name in the batch, not per event
    SELECT n.event_type, e.id AS endpoint_id, e.ordered
    FROM (SELECT DISTINCT b.event_type, b.patterns FROM batch b WHERE b.routable) n
    JOIN webhook_endpoints e
      ON e.status = 'ACTIVE' AND e.events ?| ARRAY(SELECT jsonb_array_elements_text(CAST(n.patterns AS jsonb)))
), delivered AS (
    INSERT INTO webhook_deliveries (id, event_id, endpoint_id, event_type, ordering_key, status, attempts,
                                    cycle_attempts, next_attempt_at, lease_until, lease_owner, created_at,
                                    updated_at)
    SELECT gen_random_uuid(), x.id, x.endpoint_id, left(x.event_type, 100), x.ordering_key, 'PENDING', 0, 0,
           now(), CASE WHEN t.take THEN now() + make_interval(secs => :lease) END,
           CASE WHEN t.take THEN CAST(:owner AS uuid) END, now(), now()
    FROM (SELECT b.id, b.n, b.event_type, b.ordering_key, r.endpoint_id, r.ordered,
                 row_number() OVER (PARTITION BY r.endpoint_id ORDER BY b.n) AS k
          FROM batch b JOIN routes r ON r.event_type = b.event_type
          WHERE b.routable AND b.id IN (SELECT event_id FROM fresh)) x
    LEFT JOIN unnest(:lane_ids, :lane_room) AS q(endpoint_id, room) ON q.endpoint_id = x.endpoint_id
    CROSS JOIN LATERAL (SELECT :leased AND NOT x.ordered AND x.k <= COALESCE(q.room, :room) AS take) t
    ORDER BY x.n, x.endpoint_id
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING id, endpoint_id, event_id, lease_owner
)
SELECT f.event_id, d.id, d.endpoint_id, d.lease_owner
FROM fresh f LEFT JOIN delivered d ON d.event_id = f.event_id
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("event_types", type_=ARRAY(String)),
                bindparam("routable", type_=ARRAY(Boolean)), bindparam("patterns", type_=ARRAY(Text)),
                bindparam("occurred_at", type_=ARRAY(DateTime(timezone=True))),
                bindparam("tenant_ids", type_=ARRAY(Uuid)), bindparam("ordering_keys", type_=ARRAY(String)),
                bindparam("bodies", type_=ARRAY(Text)), bindparam("traceparents", type_=ARRAY(String)),
                bindparam("tracestates", type_=ARRAY(String)), bindparam("consumer", type_=String),
                bindparam("leased", type_=Boolean), bindparam("lane_ids", type_=ARRAY(Uuid)),
                bindparam("lane_room", type_=ARRAY(Integer)), bindparam("room", type_=Integer),
                bindparam("lease", type_=Float),
                bindparam("owner", type_=Uuid)).columns(event_id=Uuid, id=Uuid, endpoint_id=Uuid,
                                                         lease_owner=Uuid)

# Finished attempts, one round trip per batch: the attempt rows, and each delivery's new state. The
# lease is kept only when the retry waits in this replica's memory (short delays); otherwise the poller
# of any replica takes it when due. An endpoint disabled meanwhile failed its pending rows: a retry must
# not bring them back.
RECORD_ATTEMPTS = text("""
WITH attempts AS (
    INSERT INTO webhook_attempts (id, delivery_id, endpoint_id, number, started_at, duration_ms, url, target_ip,
                                  request_headers, status_code, response_headers, response_body, success,
                                  error_class, error, created_at, updated_at)
    SELECT a.id, a.delivery_id, a.endpoint_id, a.number, a.started_at, a.duration_ms, a.url, a.target_ip,
           CAST(a.request_headers AS jsonb), a.status_code, CAST(a.response_headers AS jsonb), a.response_body,
           a.success, a.error_class, a.error, now(), now()
    FROM unnest(:ids, :delivery_ids, :endpoint_ids, :numbers, :started_at, :durations, :urls, :target_ips,
                :request_headers, :status_codes, :response_headers, :response_bodies, :successes, :error_classes,
                :errors)
         AS a(id, delivery_id, endpoint_id, number, started_at, duration_ms, url, target_ip, request_headers,
              status_code, response_headers, response_body, success, error_class, error)
)
UPDATE webhook_deliveries d SET
    status = u.status,
    attempts = d.attempts + 1,
    cycle_attempts = d.cycle_attempts + 1,
    next_attempt_at = CASE WHEN u.status = 'PENDING' THEN now() + make_interval(secs => u.delay) END,
    lease_until = CASE WHEN u.keep_lease THEN now() + make_interval(secs => u.delay + :lease) END,
    lease_owner = CASE WHEN u.keep_lease THEN d.lease_owner END,
    last_attempt_at = u.attempted_at,
    last_status_code = u.status_code,
    last_error_class = u.error_class,
    last_error = u.error,
    delivered_at = CASE WHEN u.status = 'SUCCEEDED' THEN now() ELSE d.delivered_at END,
    updated_at = now()
FROM unnest(:delivery_ids, :statuses, :delays, :keep_leases, :started_at, :status_codes, :error_classes,
            :outcome_errors)
     AS u(id, status, delay, keep_lease, attempted_at, status_code, error_class, error)
WHERE d.id = u.id AND d.lease_owner = :owner AND (d.status = 'PENDING' OR u.status <> 'PENDING')
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("delivery_ids", type_=ARRAY(Uuid)),
                bindparam("endpoint_ids", type_=ARRAY(Uuid)), bindparam("numbers", type_=ARRAY(Integer)),
                bindparam("started_at", type_=ARRAY(DateTime(timezone=True))),
                bindparam("durations", type_=ARRAY(Integer)), bindparam("urls", type_=ARRAY(String)),
                bindparam("target_ips", type_=ARRAY(String)), bindparam("request_headers", type_=ARRAY(Text)),
                bindparam("status_codes", type_=ARRAY(Integer)), bindparam("response_headers", type_=ARRAY(Text)),
                bindparam("response_bodies", type_=ARRAY(Text)), bindparam("successes", type_=ARRAY(Boolean)),
                bindparam("error_classes", type_=ARRAY(String)), bindparam("errors", type_=ARRAY(Text)),
                bindparam("statuses", type_=ARRAY(String)), bindparam("delays", type_=ARRAY(Float)),
                bindparam("keep_leases", type_=ARRAY(Boolean)), bindparam("outcome_errors", type_=ARRAY(Text)),
                bindparam("lease", type_=Float), bindparam("owner", type_=Uuid))


PURGE = tuple(text(sql).bindparams(bindparam("secs", type_=Float)) for sql in (
    "DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts "
    "WHERE created_at < now() - make_interval(secs => :secs) LIMIT :batch)",
    "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
    "WHERE created_at < now() - make_interval(secs => :secs) AND status <> 'PENDING' LIMIT :batch)",
    "DELETE FROM webhook_events WHERE id IN (SELECT e.id FROM webhook_events e "
    "WHERE e.created_at < now() - make_interval(secs => :secs) AND NOT EXISTS (SELECT 1 FROM "
    "webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'PENDING') LIMIT :batch)",
    "DELETE FROM inbox WHERE (consumer, event_id) IN (SELECT consumer, event_id FROM inbox "
    "WHERE processed_at < now() - make_interval(secs => :secs) LIMIT :batch)",
))
