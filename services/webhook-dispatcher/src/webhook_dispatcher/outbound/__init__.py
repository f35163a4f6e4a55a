"""What goes out to a subscriber, used by the worker (every delivery) and the API (challenge, test).

    transport  the SSRF-guarded HTTP client: one POST -> `AttemptResult` (never an exception)
    signing    Standard Webhooks secrets and signatures
    messages   the headers of one attempt (signed, with traceparent) and its client span
"""
