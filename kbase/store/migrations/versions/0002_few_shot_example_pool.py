"""few-shot example pool

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fewshot_examples",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("assistant", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "fewshot_state",
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("pool_signature", sa.String(length=80), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("task"),
    )
    op.create_table(
        "fewshot_example_documents",
        sa.Column("example_id", sa.String(length=128), nullable=False),
        sa.Column(
            "document_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(["document_pk"], ["documents.pk"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["example_id"], ["fewshot_examples.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("example_id", "document_pk"),
    )


def downgrade() -> None:
    op.drop_table("fewshot_example_documents")
    op.drop_table("fewshot_state")
    op.drop_table("fewshot_examples")
