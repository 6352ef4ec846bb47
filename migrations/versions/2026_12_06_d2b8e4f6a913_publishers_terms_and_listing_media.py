"""publishers, seller terms and listing media: self-serve publisher applications with an operator's
decision, the versioned seller terms and who accepted them, a listing's logo and screenshots

Revision ID: d2b8e4f6a913
Revises: c4a7e2d9f318
Create Date: 2026-12-06 17:45:00.000000

"""
from alembic import op
import sqlalchemy as sa



revision = 'd2b8e4f6a913'
down_revision = "c4a7e2d9f318"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'publisher_profile',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('website', sa.String(length=300), nullable=False),
        sa.Column('support_email', sa.String(length=254), nullable=False),
        sa.Column('logo_key', sa.String(length=100), nullable=True),
        sa.Column('applied_by_user_id', sa.Integer(), nullable=True),
        sa.Column('applied_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('decided_by_user_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decision_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['applied_by_user_id'], ['user_account.id'],
                                name=op.f('fk_publisher_profile_applied_by_user_id_user_account'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['decided_by_user_id'], ['user_account.id'],
                                name=op.f('fk_publisher_profile_decided_by_user_id_user_account'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                                name=op.f('fk_publisher_profile_organization_id_organization'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_publisher_profile')),
        sa.UniqueConstraint('organization_id', name=op.f('uq_publisher_profile_organization_id')),
    )
    with op.batch_alter_table('publisher_profile', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_publisher_profile_status'), ['status'], unique=False)

    op.create_table(
        'seller_terms',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.String(length=20), nullable=False),
        sa.Column('body_md', sa.Text(), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_seller_terms')),
        sa.UniqueConstraint('version', name=op.f('uq_seller_terms_version')),
    )
    op.create_table(
        'seller_terms_acceptance',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('terms_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                                name=op.f('fk_seller_terms_acceptance_organization_id_organization'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['terms_id'], ['seller_terms.id'],
                                name=op.f('fk_seller_terms_acceptance_terms_id_seller_terms')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_seller_terms_acceptance_user_id_user_account'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_seller_terms_acceptance')),
        sa.UniqueConstraint('organization_id', 'terms_id', name=op.f('uq_seller_terms_acceptance_organization_id_terms_id')),
    )
    with op.batch_alter_table('seller_terms_acceptance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seller_terms_acceptance_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_seller_terms_acceptance_terms_id'), ['terms_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_seller_terms_acceptance_user_id'), ['user_id'], unique=False)

    op.create_table(
        'offering_media',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('offering_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('storage_key', sa.String(length=100), nullable=False),
        sa.Column('content_type', sa.String(length=40), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('byte_size', sa.Integer(), nullable=False),
        sa.Column('alt_text', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.ForeignKeyConstraint(['offering_id'], ['offering.id'],
                                name=op.f('fk_offering_media_offering_id_offering'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_offering_media')),
    )
    with op.batch_alter_table('offering_media', schema=None) as batch_op:
        batch_op.create_index('ix_offering_media_offering_kind_position', ['offering_id', 'kind', 'position'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_offering_media_storage_key'), ['storage_key'], unique=False)


def downgrade():
    with op.batch_alter_table('offering_media', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_offering_media_storage_key'))
        batch_op.drop_index('ix_offering_media_offering_kind_position')
    op.drop_table('offering_media')
    with op.batch_alter_table('seller_terms_acceptance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seller_terms_acceptance_user_id'))
        batch_op.drop_index(batch_op.f('ix_seller_terms_acceptance_terms_id'))
        batch_op.drop_index(batch_op.f('ix_seller_terms_acceptance_organization_id'))
    op.drop_table('seller_terms_acceptance')
    op.drop_table('seller_terms')
    with op.batch_alter_table('publisher_profile', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_publisher_profile_status'))
    op.drop_table('publisher_profile')
