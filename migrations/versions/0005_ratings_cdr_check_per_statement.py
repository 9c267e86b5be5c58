"""PostgreSQL: a rating's CDR is checked once per statement by triggers, not a foreign key

PostgreSQL checks a foreign key row by row: for each rating inserted it looks the CDR up
and locks it (a WAL record each), about 4 µs of the server's CPU per ingested CDR, a third
of all it spends on one. A statement-level trigger checks a whole COPY with one anti-join
on the rows it inserted (its transition table). Deleting a rated CDR, or changing its id,
is refused the same way. SQLite keeps its foreign key: it checks it in the row's own
insert, at no measurable cost, where a row trigger cost ~7 µs a rating.
docs/decisions.md: what the triggers keep of the foreign key and what not.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = [
    """CREATE FUNCTION ratings_cdr_stored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM new_ratings n WHERE NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.id = n.cdr_id)
  ) THEN
    RAISE foreign_key_violation USING MESSAGE = 'a rating of a CDR that is not stored';
  END IF;
  RETURN NULL;
END $$""",
    """CREATE FUNCTION cdrs_rated_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM old_cdrs o JOIN ratings r ON r.cdr_id = o.id
    WHERE NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.id = o.id)
  ) THEN
    RAISE foreign_key_violation
      USING MESSAGE = 'a CDR that has ratings cannot be deleted or change its id';
  END IF;
  RETURN NULL;
END $$""",
]

# (table, function, transition table, events): a trigger with a transition table has one
# event, so one trigger per event, named <function>_<event>.
TRIGGERS = [
    ("ratings", "ratings_cdr_stored", "NEW TABLE AS new_ratings", ("INSERT", "UPDATE")),
    ("cdrs", "cdrs_rated_kept", "OLD TABLE AS old_cdrs", ("DELETE", "UPDATE")),
]


def upgrade() -> None:
    """Apply this revision (PostgreSQL; SQLite keeps its foreign key)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_constraint("ratings_cdr_id_fkey", "ratings", type_="foreignkey")
    for statement in FUNCTIONS:
        op.execute(statement)
    for table, function, transition, events in TRIGGERS:
        for event in events:
            op.execute(
                f"CREATE TRIGGER {function}_{event.lower()} AFTER {event} ON {table}"
                f" REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )


def downgrade() -> None:
    """Revert this revision: the foreign key again."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, function, _, events in TRIGGERS:
        for event in events:
            op.execute(f"DROP TRIGGER {function}_{event.lower()} ON {table}")
        op.execute(f"DROP FUNCTION {function}()")
    op.create_foreign_key("ratings_cdr_id_fkey", "ratings", "cdrs", ["cdr_id"], ["id"])
