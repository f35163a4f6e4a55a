"""Outbox relay: one active per service (advisory lock), publishes rows in `seq` order, then marks them.

Woken directly by commits in its own process, by LISTEN/NOTIFY for commits elsewhere (see `wakeup`),
with a polling fallback. A crash between produce and mark re-publishes the same rows on restart:
duplicates are possible and carry the same event id (consumers dedupe).

The outbox is the durable log, the broker is not trusted to keep what it acknowledged (the embedded
tansu keeps nothing across a restart; a real cluster can lose acknowledged records through an unclean
leader election or a deleted topic). The leader notices a loss three ways:
- at start: the topic's partitions hold fewer records in all than the outbox rows marked published;
- on every send: the broker places a record below an offset it acknowledged before (its log restarted);
- while idle, every `check_interval`: a partition's listed end is not past the lowest offset of the
  last pass's records (cheap, and right with tansu, whose listed end can stop at a batch's start).
Then only the rows whose records the broker lost are marked unpublished and sent again, in `seq` order,
with their own event ids (consumers drop what their inbox has already seen): the leader remembers where
the broker placed each row it sent (`placements`), and every row it placed in the topic is sent again --
but not the rows the detecting pass has just placed in a new, empty log (nor, as before, every retained row of
the topic). Not "only the rows at or past the new end": a send that failed (timed out across the restart)
may still have been written to the new log, so the new end says nothing of what survived (seen in the
chaos test: 15 events lost that way). When the partition held records from before this leadership (an
earlier leader's, or a start that finds fewer records than published rows), every retained row of the
topic (OUTBOX_RETENTION_HOURS) not known to be in the log is sent again.

Records go to an explicit partition (the producer's default: murmur2 of the key modulo the partitions the
topic had when this leadership began). A restarted tansu auto-creates a topic on the first produce with
4 partitions, not ours; left to the producer, keys would move to a partition no consumer was assigned.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import zlib
from collections import Counter as Tally
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter

from common.db import Database
from common.messaging.kafka import end_offsets, ensure_topics, make_offsets_reader, true_ends
from common.messaging.outbox import Outbox
from common.messaging.placements import Placements
from common.messaging.wakeup import register_leader, unregister_leader
from common.observability.metrics import EVENTS_PUBLISHED, OUTBOX_LAG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from common.observability.tracing import child_headers, spans_recorded
from common.outage import is_outage

logger = logging.getLogger("common.relay")
tracer = trace.get_tracer("common.relay")

# The relay's connection, for as long as it leads (each statement commits by itself: no BEGIN/COMMIT round trips):
# - a mark lost to a database crash only means those rows are published again (same event ids, which consumers
#   dedupe): marks need not wait for the WAL flush;
# - the pass's `published_at IS NULL ORDER BY seq` is read through its partial index in order, never as a bitmap.
#   A mark leaves the row's old entry in that index until a vacuum; only a plain index scan flags such an entry
#   dead when it meets it, so that the next pass skips it. A bitmap scan visited the heap page of every row marked
#   since the last vacuum at each pass: 0.4 ms growing to 3.3 ms within 8 s at ~1,200 creates/s, against 0.1-0.2 ms.
RELAY_SESSION = ("SET synchronous_commit TO OFF", "SET enable_bitmapscan TO OFF")

BROKER_LOSSES = Counter("outbox_broker_losses_total",
                        "Times the broker was found to have lost records it acknowledged", ["source"])
# A partition this leadership knows nothing of: any loss in it may concern rows of earlier leaders.
UNKNOWN_PAST = 2**62

_M = 0x5BD1E995


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's `Utils.murmur2`, unsigned), bit for bit what `aiokafka.partitioner.murmur2`
    gives, in a third of its CPU (it reads the key a byte at a time; ~10 us per event here)."""
    length = len(data)
    h = 0x9747B28C ^ length
    for (k,) in struct.iter_unpack("<I", data[: length & ~3]):
        k = (k * _M) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    tail = length & 3
    if tail:
        base = length & ~3
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


REPUBLISHED = Counter("outbox_republished_total", "Outbox rows sent again after a broker loss", ["source"])


class OutboxRelay:
    def __init__(self, database: Database, producer: AIOKafkaProducer, outbox: Outbox, *,
                 bootstrap: str, partitions: int = 3, poll_interval: float = 1.0, batch_size: int = 500,
                 check_interval: float = 3.0) -> None:
        self.database = database
        self.producer = producer
        self.outbox = outbox
        self.table = outbox.table
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.check_interval = check_interval
        self.reconnect_interval = 0.5
        self.lock_key = zlib.crc32(f"outbox-relay:{outbox.source}".encode())
        table = self.table.name
        self._select = (f"SELECT seq, topic, aggregate_id, event_type, payload::text AS payload, "
                        f"headers::text AS headers, extract(epoch FROM now() - created_at) AS age "
                        f"FROM {table} WHERE published_at IS NULL ORDER BY seq LIMIT $1")
        self._mark = f"UPDATE {table} SET published_at = now() WHERE seq = ANY($1::bigint[])"
        self._count_published = (f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE topic = $1 "
                                 f"AND published_at IS NOT NULL LIMIT $2) AS published")
        self._unmark_all = (f"UPDATE {table} SET published_at = NULL WHERE topic = $1 AND published_at IS NOT NULL "
                            f"AND seq <> ALL($2::bigint[])")
        self._unmark_rows = f"UPDATE {table} SET published_at = NULL WHERE seq = ANY($1::bigint[]) AND published_at IS NOT NULL"
        # Per (topic, partition), while this process leads: the highest offset + 1 the broker acknowledged,
        # and the lowest offset + 1 of the latest pass (its listed end must reach at least that).
        self.acknowledged: dict[tuple[str, int], int] = {}
        self.floor: dict[tuple[str, int], int] = {}
        # Where the broker placed this leadership's rows, per (topic, partition), and what it lost, per topic:
        # the rows' seqs, or None for "every retained row not known to be in the log".
        self.placements: dict[tuple[str, int], Placements] = {}
        self._lost: dict[str, set[int] | None] = {}
        self._offsets: Any = None
        self._counts: dict[str, int] = {}  # partitions written to, per topic, for this leadership
        self.is_leader = False
        self._wake = asyncio.Event()
        # Labelled metric children, looked up once (`labels()` validates and locks on every call; a pass used five).
        self._lag = OUTBOX_LAG.labels(outbox.source)
        self._oldest_age = OUTBOX_OLDEST_AGE.labels(outbox.source)
        self._published = OUTBOX_PUBLISHED.labels(outbox.source)
        self._events_published: dict[str, Any] = {}  # event type -> its EVENTS_PUBLISHED child

    def lost_leadership(self, _: BaseException | None = None) -> None:
        self.is_leader = False

    @contextlib.asynccontextmanager
    async def _connection(self) -> Any:
        """The relay's own connection. While the database is unreachable it is asked for again every
        `reconnect_interval` (not after `supervise`'s doubling backoff, which reached 8 s within a 7 s
        PostgreSQL restart): publishing resumes within a moment of the database's return."""
        since = None
        while True:
            try:
                conn = await self.database.engine.connect().start()
                break
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if since is None:
                    since = asyncio.get_running_loop().time()
                    logger.warning("outbox relay %s: database unreachable (%s: %s); waiting for it",
                                   self.outbox.source, type(exc).__name__, exc)
                await asyncio.sleep(self.reconnect_interval)
        try:
            yield conn
        finally:
            await conn.close()

    async def run(self) -> None:
        """Lead (publish) while this process holds the relay lock; meant to run under `supervise`."""
        async with self._connection() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            while not await raw.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                # Another process is the active relay; stand by and try again.
                await asyncio.sleep(2.0)
            self.is_leader = True
            try:
                register_leader(self.outbox.channel, self._wake.set)  # commits of this process
                await raw.add_listener(self.outbox.channel, self._on_notify)  # commits of other processes
                await ensure_topics(self.bootstrap, [self.outbox.topic], self.partitions)
                for setting in RELAY_SESSION:
                    await raw.execute(setting)
                self._offsets = make_offsets_reader(self.bootstrap, f"{self.outbox.source}-relay-offsets")
                await self._offsets.start()
                self.acknowledged.clear()
                self.floor.clear()
                self.placements.clear()
                self._lost.clear()
                self._counts.clear()
                await self._check_at_start(raw)
                loop = asyncio.get_running_loop()
                checked_at = loop.time()
                while True:
                    if self._lost:
                        await self._republish(raw)
                    published = await self.publish_batch(raw)
                    if published >= self.batch_size or self._lost:
                        continue
                    # Commits arriving while a pass runs share the next one (one SELECT, one UPDATE).
                    wait = self.poll_interval
                    if self.floor:
                        wait = min(wait, max(0.0, checked_at + self.check_interval - loop.time()))
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                    except TimeoutError:
                        await raw.fetchval("SELECT 1")  # quiet: make sure the lock's connection is alive
                    self._wake.clear()
                    if self.floor and loop.time() - checked_at >= self.check_interval:
                        await self._check_idle()
                        checked_at = loop.time()
            finally:
                self.is_leader = False
                if self._offsets is not None:
                    with contextlib.suppress(Exception):
                        await self._offsets.stop()
                    self._offsets = None
                unregister_leader(self.outbox.channel, self._wake.set)
                with contextlib.suppress(Exception):
                    await raw.remove_listener(self.outbox.channel, self._on_notify)
                    await raw.execute("SELECT pg_advisory_unlock($1)", self.lock_key)
                # Never back to the pool: its session settings (synchronous_commit) must not reach a
                # transaction that needs a durable commit.
                with contextlib.suppress(Exception):
                    await conn.invalidate()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def publish_batch(self, conn: Any) -> int:
        """One pass on the relay's own asyncpg connection: read unpublished rows in order, send them,
        mark the sent ones."""
        rows = await conn.fetch(self._select, self.batch_size)
        if not rows:
            self._lag.set(0)
            self._oldest_age.set(0)
            return 0
        self._lag.set(len(rows))
        self._oldest_age.set(float(rows[0]["age"]))
        futures = []
        for row in rows:
            futures.append(await self._send(row))
        results = await asyncio.gather(*futures, return_exceptions=True)
        sent = [(row["seq"], meta) for row, meta in zip(rows, results, strict=True)
                if not isinstance(meta, BaseException)]
        done = [seq for seq, _ in sent]
        self._note_acknowledged(sent)
        failed = len(rows) - len(done)
        if done:
            await conn.execute(self._mark, done)
            self._published.inc(len(done))
            sent = set(done)
            for event, count in Tally(row["event_type"] for row in rows if row["seq"] in sent).items():
                child = self._events_published.get(event)
                if child is None:
                    child = self._events_published[event] = EVENTS_PUBLISHED.labels(self.outbox.source, event)
                child.inc(count)
        if failed:
            logger.warning("outbox relay: %d of %d sends failed; will retry", failed, len(rows))
            await asyncio.sleep(0.5)
        return len(done)

    # ------------------------------------------------------------------ broker loss
    def _note_acknowledged(self, sent: list[tuple[int, Any]]) -> None:
        """Record where the broker placed each row (seq, metadata); a record placed below an offset it
        acknowledged before means its log went back. Of that pass, only the rows of such a partition that it began
        at offset 0 are known to be in the new log: the others may have been acknowledged by the broker before
        it died, or placed over records it still holds."""
        by_partition: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for seq, meta in sent:
            by_partition.setdefault((meta.topic, meta.partition), []).append((meta.offset, seq))
        for placed in by_partition.values():
            placed.sort()
        back = {key: placed[0][0] for key, placed in by_partition.items()
                if placed[0][0] < self.acknowledged.get(key, 0)}
        for topic in {t for t, _ in back}:
            (t, p), end = next((key, end) for key, end in back.items() if key[0] == topic)
            self._broker_lost(topic, f"partition {p} placed a record at offset {end} after acknowledging up to "
                                     f"{self.acknowledged[(t, p)] - 1}",
                              {p: end for (t, p), end in back.items() if t == topic},
                              sent={seq for key in back if key[0] == topic for _, seq in by_partition[key]})
        for key, placed in by_partition.items():
            lost = self._lost.get(key[0], ())
            # Known to be in the new log: a pass's rows in a partition it began at offset 0 (an empty log). One that
            # went back to a later offset may have been placed over records the broker still holds: right after a
            # restart tansu was seen placing a batch at 5 in a log it had acknowledged up to 6 (two racing writes),
            # and serving its records 5 and 6 from the older batch -- one event lost. Those rows go again.
            if key[0] in self._lost and back.get(key, 1) != 0:
                if lost is not None:  # maybe acknowledged by the broker that died, or placed over: sent again
                    lost.update(seq for _, seq in placed)
                continue
            self._placed(key).add(placed)
            self.acknowledged[key] = max(self.acknowledged.get(key, 0), placed[-1][0] + 1)
            self.floor[key] = placed[0][0] + 1

    def _placed(self, key: tuple[str, int]) -> Placements:
        if key not in self.placements:  # not seen at this leadership's start: its past is unknown
            self.placements[key] = Placements(baseline=UNKNOWN_PAST)
        return self.placements[key]

    async def _partitions(self, topic: str) -> int:
        if topic not in self._counts:
            self._counts[topic] = len(await self.producer.partitions_for(topic)) or self.partitions
        return self._counts[topic]

    async def _check_at_start(self, conn: Any) -> None:
        """A new leader knows no acknowledged offsets: the outbox says how many records the topic must
        hold at least (rows marked published; other producers of the topic only add to it)."""
        topic = self.outbox.topic
        for attempt in itertools.count():
            try:
                ends = await true_ends(self._offsets, topic, await self._partitions(topic))
                break
            except Exception as exc:
                # Asked again until the broker answers (nothing can be published before it does anyway). Going on
                # without these ends left the leadership with no baseline at all: a restart of the broker before it
                # (e.g. the one that ended the previous leadership) lost rows that nothing would ever re-send.
                if attempt == 0:
                    logger.warning("outbox relay %s: end offsets of %s unreadable at start (%s: %s); asking again "
                                   "until the broker answers", self.outbox.source, topic, type(exc).__name__, exc)
                await asyncio.sleep(self.reconnect_interval)
        total = sum(ends.values())
        published = await conn.fetchval(self._count_published, topic, total + 1)
        self.placements.update({(topic, p): Placements(baseline=end) for p, end in ends.items()})
        if published > total:
            self._broker_lost(topic, f"it holds {total} records but {published} outbox rows were published to it",
                              None)
        else:  # what the partitions hold now is the baseline: a restart with nothing sent shows below it
            self.acknowledged.update({(topic, p): end for p, end in ends.items()})
            self.floor.update({(topic, p): 1 for p, end in ends.items() if end > 0})

    async def _check_idle(self) -> None:
        """While idle, compare the listed ends with the latest records sent (a restart with nothing to send)."""
        for topic in {t for t, _ in self.floor}:
            try:
                lost = await self._shortened(topic)
            except Exception as exc:
                logger.info("outbox relay %s: end offsets of %s unreadable: %s", self.outbox.source, topic, exc)
                continue
            if lost:
                p, end = next(iter(lost.items()))
                self._broker_lost(topic, f"partition {p} ends at offset {end} after acknowledging offset "
                                         f"{self.floor[(topic, p)] - 1}", lost)

    async def _shortened(self, topic: str) -> dict[int, int]:
        """The partitions whose listed end is not past the lowest offset of the last records sent to them
        (tansu may list a partition's end at its last batch's start + 1, never lower): {partition: end}."""
        ends = await end_offsets(self._offsets, topic, await self._partitions(topic))
        return {p: ends.get(p, 0) for (t, p), floor in self.floor.items() if t == topic and ends.get(p, 0) < floor}

    def _broker_lost(self, topic: str, why: str, ends: dict[int, int] | None, sent: set[int] = frozenset()) -> None:
        """`ends`: each partition seen to go back and where its log ends now (None: which is unknown). The rows
        placed in any partition of the topic are lost, minus `sent` (just placed in the new log)."""
        if topic not in self._lost:
            BROKER_LOSSES.labels(self.outbox.source).inc()
            logger.warning("outbox relay %s: the broker lost acknowledged records of %s (%s); re-publishing "
                           "them from the outbox", self.outbox.source, topic, why)
        lost = self._lost.setdefault(topic, set())
        everything = ends is None or lost is None
        # Every partition of the topic, all it held: a restarted broker lost them all, and records of failed
        # sends may sit below a new end in place of ours (module docstring).
        for key in [key for key in self.placements if key[0] == topic] + [(topic, p) for p in ends or {}]:
            seqs, before_us = self._placed(key).cut(0)
            everything = everything or before_us
            if lost is not None:
                lost.update(seqs)
            self.acknowledged[key] = (ends or {}).get(key[1], 0)
            self.floor.pop(key, None)
        if everything:
            self._lost[topic] = None
        elif lost is not None:
            lost.difference_update(sent)

    async def _republish(self, conn: Any) -> None:
        """Mark the lost rows unpublished: the loop sends them again in order."""
        for topic in sorted(self._lost):
            await ensure_topics(self.bootstrap, [topic], self.partitions)  # recreated with its partitioning
            try:  # partitions not written to since the loss went back too (tansu loses all of them at once)
                if shortened := await self._shortened(topic):
                    self._broker_lost(topic, "", shortened)
            except Exception as exc:
                logger.info("outbox relay %s: end offsets of %s unreadable: %s", self.outbox.source, topic, exc)
                self._lost[topic] = None
            lost = self._lost[topic]
            if lost is None:
                mine = [placed for (t, _), placed in self.placements.items() if t == topic]
                in_log = [seq for placed in mine for seq in placed.kept()]
                status = await conn.execute(self._unmark_all, topic, in_log)
                for placed in mine:  # every retained row is sent again by this leadership: all tracked now
                    placed.baseline = 0
            else:
                status = await conn.execute(self._unmark_rows, sorted(lost))
            count = int(status.split()[-1])
            REPUBLISHED.labels(self.outbox.source).inc(count)
            logger.warning("outbox relay %s: %d rows of %s marked for re-publishing (%s)", self.outbox.source, count,
                           topic, "every retained row not in the log" if lost is None else "the rows it lost")
        self._lost.clear()

    async def _send(self, row: Any) -> asyncio.Future[Any]:
        topic = row["topic"]
        stored: dict[str, str] = orjson.loads(row["headers"]) if row["headers"] else {}
        carrier: dict[str, str] = {}
        if spans_recorded():
            with tracer.start_as_current_span(f"{topic} publish", context=propagate.extract(stored),
                                              kind=SpanKind.PRODUCER, attributes={
                                                  "messaging.system": "kafka", "messaging.destination.name": topic}):
                propagate.inject(carrier)
        else:  # nothing exports spans: only the trace ids travel on (no SDK span per row)
            carrier = child_headers(stored.get("traceparent"), stored.get("tracestate"))
        headers = [("event", row["event_type"].encode())] + [(k, v.encode()) for k, v in carrier.items()]
        key = row["aggregate_id"].encode()
        partitions = await self._partitions(topic)
        partition = (murmur2(key) & 0x7FFFFFFF) % partitions if partitions > 1 else 0
        # The payload as PostgreSQL prints the jsonb: the same JSON document the row holds.
        return await self.producer.send(topic, value=row["payload"].encode(), key=key, partition=partition,
                                        headers=headers)
