"""name lookups: the names a document's ingest looked facts up by, hashed, so that
forgetting can tell which later documents a removed fact could have changed

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "name_lookups",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "document_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name_hash", sa.String(length=80), nullable=False),
        sa.Column("words", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["document_pk"], ["documents.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("name_lookups", schema=None) as batch_op:
        batch_op.create_index("ix_name_lookups_document", ["document_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("name_lookups", schema=None) as batch_op:
        batch_op.drop_index("ix_name_lookups_document")
    op.drop_table("name_lookups")
