"""message log: drop the indexes no query uses, leave room on each page for the intent update

Every incoming message is one INSERT into message_log and, a moment later, one UPDATE that files the
intent Rasa recognised. The indexes on `intent` and `unanswered` served no query (the dashboard reads by
`created_at`, the queues by `openid`), yet each message paid for them twice: on the INSERT, and again on
the UPDATE, which could not be a heap-only (HOT) update because it changed an indexed column. Without
them, and with 15 % of each page left free (PostgreSQL), the intent update rewrites the row in place of
touching all five indexes (benchmarks/gateway/REPORT.md).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.drop_index("ix_message_log_intent")
        batch_op.drop_index("ix_message_log_unanswered")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE message_log SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE message_log RESET (fillfactor)")
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.create_index("ix_message_log_unanswered", ["unanswered"], unique=False)
        batch_op.create_index("ix_message_log_intent", ["intent"], unique=False)
