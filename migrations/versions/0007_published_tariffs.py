"""published tariff versions: every process rates with the set stored here

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 17:00:00

The table starts empty: `callrate db upgrade` (service.db.migrate.upgrade) publishes the
tariff directory's versions right after the migrations, so the versions existing ratings
name are published with the content they were rated with.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "tariff_versions",
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("tariff_versions")
