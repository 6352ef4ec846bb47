"""reviews: one per organization per offering, helpful votes, the publisher's reply, hiding

Revision ID: c4a7e2d91b53
Revises: 7f3a9c1e5d20
Create Date: 2026-12-06 17:45:00.000000

"""
from alembic import op
import sqlalchemy as sa



revision = 'c4a7e2d91b53'
down_revision = "7f3a9c1e5d20"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'review',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('offering_id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('author_id', sa.Integer(), nullable=True),
        sa.Column('author_name', sa.String(length=120), nullable=False),
        sa.Column('reviewer_kind', sa.String(length=8), nullable=False),
        sa.Column('rating', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=120), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reply_body', sa.Text(), nullable=True),
        sa.Column('reply_author_id', sa.Integer(), nullable=True),
        sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('hidden_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('hidden_reason', sa.Text(), nullable=True),
        sa.Column('hidden_by_id', sa.Integer(), nullable=True),
        sa.CheckConstraint('rating >= 1 AND rating <= 5', name=op.f('ck_review_rating_range')),
        sa.ForeignKeyConstraint(['author_id'], ['user_account.id'], name=op.f('fk_review_author_id_user_account'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['hidden_by_id'], ['user_account.id'],
                                name=op.f('fk_review_hidden_by_id_user_account'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['offering_id'], ['offering.id'], name=op.f('fk_review_offering_id_offering'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                                name=op.f('fk_review_organization_id_organization'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['reply_author_id'], ['user_account.id'],
                                name=op.f('fk_review_reply_author_id_user_account'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_review')),
        sa.UniqueConstraint('organization_id', 'offering_id', name=op.f('uq_review_organization_id_offering_id')),
    )
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.create_index('ix_review_offering_id_hidden_at', ['offering_id', 'hidden_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_author_id'), ['author_id'], unique=False)
    op.create_table(
        'review_vote',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('review_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.ForeignKeyConstraint(['review_id'], ['review.id'], name=op.f('fk_review_vote_review_id_review'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_review_vote_user_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_review_vote')),
        sa.UniqueConstraint('review_id', 'user_id', name=op.f('uq_review_vote_review_id_user_id')),
    )
    with op.batch_alter_table('review_vote', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_vote_review_id'), ['review_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_vote_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('review_vote', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_vote_user_id'))
        batch_op.drop_index(batch_op.f('ix_review_vote_review_id'))
    op.drop_table('review_vote')
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_author_id'))
        batch_op.drop_index(batch_op.f('ix_review_organization_id'))
        batch_op.drop_index('ix_review_offering_id_hidden_at')
    op.drop_table('review')
