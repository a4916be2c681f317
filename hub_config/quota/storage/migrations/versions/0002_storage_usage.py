"""storage usage: the last measurement of each user's home folder

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storage_usage",
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("home_bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("measured_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )


def downgrade() -> None:
    op.drop_table("storage_usage")
