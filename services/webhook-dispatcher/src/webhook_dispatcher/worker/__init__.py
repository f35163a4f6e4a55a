"""The delivery runtime (no HTTP API in here): what turns consumed events into signed POSTs.

    consumer     every domain topic -> one statement per batch (inbox, events, routed deliveries)
    worker       DeliveryWorker: joins the parts below by callbacks; intake, attempts, shutdown
    lanes        per-endpoint queue, concurrency cap and rate limit (isolation)
    poller       claims due deliveries (retries, replays, overflow, crashed replicas' rows)
    recorder     records finished attempts in batches (and the endpoints' health)
    ownership    one replica at a time delivers to an endpoint (a lease)
    registry     endpoint configuration in memory, reloaded on NOTIFY
    retries      what follows an attempt: done, retry when, dead letter, disable
    maintenance  backlog gauges and the retention purge
"""
