"""ratings keep the subscriber profile used; items and explanation are rebuilt on read

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DETAIL = ("items", "rules", "explanation_zh")


def upgrade() -> None:
    """Apply this revision: rows written from now on hold the profile, not the detail."""
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("profile_plan", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("profile_home_area", sa.String(length=4), nullable=True))
        batch.add_column(sa.Column("profile_packages", sa.Text(), nullable=True))
        batch.add_column(sa.Column("profile_registered", sa.Boolean(), nullable=True))
        for name in DETAIL:
            batch.alter_column(name, existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    """Revert this revision. Rows without a stored detail cannot keep NOT NULL columns: the
    downgrade refuses while any exists (rate them again under the older release first)."""
    bind = op.get_bind()
    missing = bind.execute(sa.text("SELECT count(*) FROM ratings WHERE items IS NULL")).scalar()
    if missing:
        raise RuntimeError(
            f"{missing} ratings hold no stored detail (written by revision 0004 or later)"
        )
    with op.batch_alter_table("ratings") as batch:
        for name in DETAIL:
            batch.alter_column(name, existing_type=sa.Text(), nullable=False)
        for name in ("profile_registered", "profile_packages", "profile_home_area", "profile_plan"):
            batch.drop_column(name)
