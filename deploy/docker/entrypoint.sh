#!/bin/sh
# Entry point of the service image: `plataforma serve` (default) or `plataforma migrate`, for the service
# named by SERVICE_NAME (auth, tenants, support, leads, conversations, billing, webhook-dispatcher).
set -eu
: "${SERVICE_NAME:?set SERVICE_NAME to the service this container runs}"
package=$(echo "$SERVICE_NAME" | tr '-' '_')
case "${1:-serve}" in
  serve)
    exec uvicorn "$package.app:create_app" --factory --host 0.0.0.0 --port "${PORT:-8000}" --proxy-headers ;;
  migrate)
    # One Alembic history per service; DATABASE_URL is that service's database.
    exec alembic -c "/app/services/$SERVICE_NAME/alembic.ini" upgrade head ;;
  *)
    exec "$@" ;;
esac
