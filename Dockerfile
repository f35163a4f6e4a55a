# One image per service, built from the workspace root: docker build --build-arg SERVICE=tenants .
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ARG SERVICE
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
RUN uv sync --frozen --no-dev --package plataforma-${SERVICE}

FROM python:3.11-slim
ARG SERVICE
ARG PORT=8000
WORKDIR /app
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH SERVICE_DIR=/app/services/${SERVICE} PORT=${PORT}
USER 65534
# Migrations run first (one Alembic history per service), then the API.
CMD ["sh", "-c", "alembic -c $SERVICE_DIR/alembic.ini upgrade head && exec uvicorn $APP --factory --host 0.0.0.0 --port $PORT --proxy-headers"]
