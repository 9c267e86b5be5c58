"""The audit log, read by admins."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service import schemas
from service.db import repository


def audit_log(session: Session, *, after_id: int, limit: int) -> schemas.AuditList:
    """A page of the audit log."""
    rows = repository.list_audit(session, after_id=after_id, limit=limit)
    return schemas.AuditList(
        items=[
            schemas.AuditOut(
                id=r.id,
                at=r.at,
                key_id=r.key_id,
                role=r.role,
                action=r.action,
                subject=r.subject,
                detail=r.detail,
            )
            for r in rows
        ],
        next_after_id=rows[-1].id if len(rows) == limit else None,
    )
