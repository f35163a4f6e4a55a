"""Benchmarks of the webhook dispatcher (`make bench`, i.e. `python -m bench`); not part of the tests.

One run starts the real stack (embedded PostgreSQL, tansu Kafka, auth + tenants + webhook-dispatcher as
processes, see :mod:`devstack.supervisor`) in a temporary directory, a fast local receiver in its own
process, and measures, against 127.0.0.1 only:

    (a) raw limit     -- a bare aiokafka consumer posting the same bodies with aiohttp      (bench.raw)
    (b) throughput    -- the dispatcher's sustained deliveries/s, everything recorded       (bench.scenarios)
    (c) (b) / (a)
    (d) latency       -- API call -> webhook at a steady rate, p50 / p99
    (e) fan-out       -- one event to 100 endpoints
    (f) isolation     -- (d) again while another endpoint hangs

It prints a table (measured vs target, PASS/MISS) and writes bench/results/latest.json.
"""
