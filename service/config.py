"""Settings: the only reader of the environment (CALLRATE_*)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# SPEC §6 roles; here so the command line can name them without loading the database layer.
ROLES = ("switch", "agent", "ops", "admin")
# How long a stored key is trusted from memory before it is looked up again (a key revoked
# by `callrate keys revoke` stops working within this time, without a restart).
STORED_KEY_RECHECK_S = 5.0
LOG_FORMATS = ("text", "json")  # one line per request on stderr (service/ops/requestlog.py)


class Settings(BaseSettings):
    """Service configuration; every field can be set as CALLRATE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="CALLRATE_", extra="ignore")

    data_dir: Path = PROJECT_ROOT / "data"
    tariffs_dir: Path = PROJECT_ROOT / "tariffs"
    database_url: str | None = None  # default: SQLite file in data_dir
    api_keys: str = ""  # "role=key,role=key"
    default_plan: str | None = None  # plan for unregistered callers without a plan
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_records: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024
    migrations_dir: Path = PROJECT_ROOT / "migrations"
    workers: int = 1  # uvicorn worker processes for `callrate serve`
    db_pool_size: int = 8  # connections per pool, no overflow beyond it
    # requests admitted at once per worker; past it 503 overloaded with Retry-After at once
    max_in_flight: int = Field(default=64, ge=1)
    # ... and while the event loop lags more than this (requests queue unseen); 0: off (a
    # legitimate burst, e.g. 16 requests at once with large bodies, would be refused too)
    max_loop_lag_s: float = Field(default=0.0, ge=0)
    sqlite_synchronous: str = "FULL"  # FULL: a 2xx batch survives power loss, not only a crash
    # Bounds on waiting for the database (docs/reliability.md): past them a request is
    # answered 503 database_unavailable with Retry-After instead of hanging.
    db_connect_timeout_s: float = 2.0  # PostgreSQL connect_timeout (libpq: at least 2 s)
    db_statement_timeout_s: float = 5.0  # PG statement_timeout (+0.5 s client side); SQLite busy
    db_pool_timeout_s: float = 2.0  # waiting for a pooled connection
    readyz_timeout_s: float = 1.5  # /readyz answers 503 after this
    # how often a running server looks for newly published tariff versions (SPEC §7: a new
    # version is used within 5 s, without a restart)
    tariffs_poll_s: float = Field(default=2.0, gt=0, le=4.0)
    # a request body not whole within this is answered 408 and frees its admission slot:
    # a slow client must not hold a slot a whole request needs (the switch sends batches)
    body_timeout_s: float = Field(default=10.0, gt=0)
    log_format: Literal["text", "json"] = "text"  # request log lines on stderr
    # SPEC §3.4: what a site configures for its switches' own formats (docs/mediation.md)
    mediation_file: Path | None = None
    # prometheus_client's own variable: with several workers each writes its metrics there
    # and /metrics sums them (`callrate serve --workers N` sets it when unset)
    prometheus_multiproc_dir: Path | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file under data_dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'callrate.sqlite3'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process."""
    return Settings()
