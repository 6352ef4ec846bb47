"""team invitations and seller webhooks

Invitations to join an organization (signed, expiring links sent by mail), and seller webhooks: a
publisher's endpoints, the events sent to them, each delivery and the log of its attempts.

Revision ID: cdebb29682b3
Revises: c4a7e2d91b36
Create Date: 2026-12-06 17:27:19.775785

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'cdebb29682b3'
down_revision = "c4a7e2d91b36"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('seller_webhook_endpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('secret_ref', sa.String(length=200), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('secret_rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_seller_webhook_endpoint_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seller_webhook_endpoint'))
    )
    with op.batch_alter_table('seller_webhook_endpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seller_webhook_endpoint_organization_id'), ['organization_id'], unique=False)

    op.create_table('seller_webhook_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_seller_webhook_event_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seller_webhook_event')),
    sa.UniqueConstraint('event_id', name=op.f('uq_seller_webhook_event_event_id'))
    )
    with op.batch_alter_table('seller_webhook_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seller_webhook_event_organization_id'), ['organization_id'], unique=False)

    op.create_table('organization_invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.Column('invited_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted_by_id', sa.Integer(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['accepted_by_id'], ['user_account.id'], name=op.f('fk_organization_invitation_accepted_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['invited_by_id'], ['user_account.id'], name=op.f('fk_organization_invitation_invited_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_organization_invitation_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization_invitation'))
    )
    with op.batch_alter_table('organization_invitation', schema=None) as batch_op:
        batch_op.create_index('ix_organization_invitation_org_email', ['organization_id', 'email'], unique=False)
        batch_op.create_index(batch_op.f('ix_organization_invitation_organization_id'), ['organization_id'], unique=False)

    op.create_table('seller_webhook_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['seller_webhook_endpoint.id'], name=op.f('fk_seller_webhook_delivery_endpoint_id_seller_webhook_endpoint'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['seller_webhook_event.id'], name=op.f('fk_seller_webhook_delivery_event_id_seller_webhook_event'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seller_webhook_delivery'))
    )
    with op.batch_alter_table('seller_webhook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seller_webhook_delivery_endpoint_id'), ['endpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_seller_webhook_delivery_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_seller_webhook_delivery_status_next', ['status', 'next_attempt_at'], unique=False)

    op.create_table('seller_webhook_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('response_excerpt', sa.Text(), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['seller_webhook_delivery.id'], name=op.f('fk_seller_webhook_attempt_delivery_id_seller_webhook_delivery'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seller_webhook_attempt'))
    )
    with op.batch_alter_table('seller_webhook_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seller_webhook_attempt_delivery_id'), ['delivery_id'], unique=False)



def downgrade():
    with op.batch_alter_table('seller_webhook_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seller_webhook_attempt_delivery_id'))

    op.drop_table('seller_webhook_attempt')
    with op.batch_alter_table('seller_webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_seller_webhook_delivery_status_next')
        batch_op.drop_index(batch_op.f('ix_seller_webhook_delivery_event_id'))
        batch_op.drop_index(batch_op.f('ix_seller_webhook_delivery_endpoint_id'))

    op.drop_table('seller_webhook_delivery')
    with op.batch_alter_table('organization_invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organization_invitation_organization_id'))
        batch_op.drop_index('ix_organization_invitation_org_email')

    op.drop_table('organization_invitation')
    with op.batch_alter_table('seller_webhook_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seller_webhook_event_organization_id'))

    op.drop_table('seller_webhook_event')
    with op.batch_alter_table('seller_webhook_endpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seller_webhook_endpoint_organization_id'))

    op.drop_table('seller_webhook_endpoint')
