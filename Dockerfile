# Two images from the workspace root:
#   docker build --target service -t plataforma:latest .          # every service; SERVICE picks one
#   docker build --target gateway -t plataforma-gateway:latest .  # Caddy + the shared Caddyfile + API docs
# A service container runs `uvicorn <APP>` (or `migrate`: its Alembic history, one shot) with its settings
# from the environment (ARCHITECTURE §4). Both run as non-root and work on a read-only root filesystem.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
# The seven services and libs/common (not the dev stack: no embedded PostgreSQL/tansu/Caddy wheels). uv compiles
# the installed packages; compileall the workspace's own (editable) sources, which a container on a read-only root
# filesystem would otherwise compile again on every start (~2 s of CPU per service).
RUN uv sync --frozen --no-dev \
      --package plataforma-auth --package plataforma-tenants --package plataforma-support \
      --package plataforma-leads --package plataforma-conversations --package plataforma-billing \
      --package plataforma-webhook-dispatcher \
 && .venv/bin/python -m compileall -q libs services

# The offline Swagger UI 5 page of /api/docs (devstack.docs), built here instead of from ./.data at run time.
# Only fastapi-offline (its locked version) is added to the services' environment: not the dev stack's
# embedded PostgreSQL/tansu/Caddy wheels.
FROM build AS docs
RUN uv export --frozen --no-dev --package plataforma-devstack --no-hashes --no-emit-workspace \
      | grep -i '^fastapi-offline==' > /tmp/docs-requirements.txt \
 && uv pip install --python .venv/bin/python --no-deps -r /tmp/docs-requirements.txt \
 && PYTHONPATH=libs/devstack/src .venv/bin/python -m devstack.docs /docs

FROM caddy:2.10 AS gateway
COPY deploy/gateway/Caddyfile /etc/caddy/Caddyfile
COPY --from=docs /docs /srv/docs
ENV DOCS_ROOT=/srv/docs GATEWAY_PORT=8080 XDG_DATA_HOME=/tmp XDG_CONFIG_HOME=/tmp
USER 65534
EXPOSE 8080

FROM ${PYTHON_IMAGE} AS service
WORKDIR /app
COPY --from=build /app /app
COPY deploy/docker/entrypoint.sh /usr/local/bin/plataforma
ENV PATH=/app/.venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8000
USER 65534
ENTRYPOINT ["plataforma"]
CMD ["serve"]
