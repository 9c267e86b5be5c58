"""suspense keeps the raw bytes; one open row per distinct raw

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 08:20:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("resolved_at IS NULL")


def upgrade() -> None:
    """Apply this revision."""
    bind = op.get_bind()
    with op.batch_alter_table("suspense") as batch:
        batch.add_column(sa.Column("raw_sha256", sa.String(length=64), nullable=True))
        if bind.dialect.name == "postgresql":
            batch.alter_column(
                "raw",
                type_=sa.LargeBinary(),
                existing_type=sa.Text(),
                postgresql_using="convert_to(raw, 'UTF8')",
            )
        else:
            batch.alter_column("raw", type_=sa.LargeBinary(), existing_type=sa.Text())
    if bind.dialect.name == "sqlite":  # the copied rows still hold TEXT values
        op.execute("UPDATE suspense SET raw = CAST(raw AS BLOB)")
    suspense = sa.table(
        "suspense",
        sa.column("id", sa.BigInteger()),
        sa.column("raw", sa.LargeBinary()),
        sa.column("raw_sha256", sa.String()),
        sa.column("resolved_at", sa.DateTime(timezone=True)),
        sa.column("resolution", sa.String()),
    )
    # Earlier concurrent retries left several open rows of one record: keep the oldest open.
    seen: set[str] = set()
    now = datetime.now(UTC)
    rows = bind.execute(sa.select(suspense.c.id, suspense.c.raw, suspense.c.resolved_at))
    for row_id, raw, resolved_at in rows.all():
        digest = hashlib.sha256(raw).hexdigest()
        values: dict[str, object] = {"raw_sha256": digest}
        if resolved_at is None:
            if digest in seen:
                values.update(resolved_at=now, resolution="merged")
            seen.add(digest)
        bind.execute(sa.update(suspense).where(suspense.c.id == row_id).values(**values))
    with op.batch_alter_table("suspense") as batch:
        batch.alter_column("raw_sha256", existing_type=sa.String(length=64), nullable=False)
        batch.create_index(
            "ux_suspense_open_raw",
            ["raw_sha256"],
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )


def downgrade() -> None:
    """Revert this revision (PostgreSQL refuses it while a raw holds NUL or invalid UTF-8)."""
    bind = op.get_bind()
    with op.batch_alter_table("suspense") as batch:
        batch.drop_index("ux_suspense_open_raw")
        batch.drop_column("raw_sha256")
        if bind.dialect.name == "postgresql":
            batch.alter_column(
                "raw",
                type_=sa.Text(),
                existing_type=sa.LargeBinary(),
                postgresql_using="convert_from(raw, 'UTF8')",
            )
        else:
            batch.alter_column("raw", type_=sa.Text(), existing_type=sa.LargeBinary())
    if bind.dialect.name == "sqlite":
        op.execute("UPDATE suspense SET raw = CAST(raw AS TEXT)")
