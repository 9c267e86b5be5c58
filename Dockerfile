# callrate: the same `callrate serve` as the README, listening on all interfaces.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CALLRATE_DATA_DIR=/data \
    CALLRATE_TARIFFS_DIR=/app/tariffs \
    CALLRATE_MIGRATIONS_DIR=/app/migrations

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir . && useradd --system --home /data callrate \
    && mkdir -p /data && chown callrate /data
COPY tariffs ./tariffs
COPY migrations ./migrations
COPY alembic.ini ./

USER callrate
VOLUME /data
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# Migrates the database (SQLite under /data, or CALLRATE_DATABASE_URL), then serves.
CMD ["callrate", "serve", "--host", "0.0.0.0", "--port", "8000"]
