"""rerate jobs keep the UTC offsets their window was given in, to answer in them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHINA_TIME_S = 8 * 3600  # jobs made before: shown in +08:00, the tariffs' own time (SPEC §1)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("rerate_jobs") as batch:
        for name in ("from_utc_offset_s", "to_utc_offset_s"):
            batch.add_column(
                sa.Column(name, sa.Integer(), nullable=False, server_default=str(CHINA_TIME_S))
            )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("rerate_jobs") as batch:
        batch.drop_column("to_utc_offset_s")
        batch.drop_column("from_utc_offset_s")
