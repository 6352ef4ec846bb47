"""invoices and credit notes with gapless yearly numbers, billing details per organization, mail attachments

Every paid order gets an invoice (INV-<year>-<number>) and every refund a credit note
(CN-<year>-<number>); a counter row per series and year hands out the numbers inside the
transaction that issues the document, so a rollback never leaves a gap.

Revision ID: c4a7e2d91b36
Revises: d2b8e4f6a913
Create Date: 2026-12-06 17:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'c4a7e2d91b36'
down_revision = "d2b8e4f6a913"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'billing_details',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('company', sa.String(length=200), nullable=True),
        sa.Column('address', sa.Text(), nullable=False),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('vat_id', sa.String(length=20), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                  nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                                name=op.f('fk_billing_details_organization_id_organization'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_details')),
        sa.UniqueConstraint('organization_id', name=op.f('uq_billing_details_organization_id')),
    )
    op.create_table(
        'document_sequence',
        sa.Column('series', sa.String(length=8), nullable=False),
        sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('last_number', sa.Integer(), nullable=False),
        sa.CheckConstraint('last_number >= 0', name=op.f('ck_document_sequence_last_number_nonnegative')),
        sa.PrimaryKeyConstraint('series', 'year', name=op.f('pk_document_sequence')),
    )
    op.create_table(
        'invoice',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('series', sa.String(length=8), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('dedupe_key', sa.String(length=160), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('credited_invoice_id', sa.Integer(), nullable=True),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('subtotal_minor', sa.Integer(), nullable=False),
        sa.Column('tax_minor', sa.Integer(), nullable=False),
        sa.Column('total_minor', sa.Integer(), nullable=False),
        sa.Column('buyer_name', sa.String(length=200), nullable=False),
        sa.Column('buyer_company', sa.String(length=200), nullable=True),
        sa.Column('buyer_address', sa.Text(), nullable=True),
        sa.Column('buyer_country', sa.String(length=2), nullable=True),
        sa.Column('buyer_vat_id', sa.String(length=20), nullable=True),
        sa.Column('buyer_email', sa.String(length=254), nullable=False),
        sa.Column('issuer_name', sa.String(length=200), nullable=False),
        sa.Column('issuer_address', sa.Text(), nullable=True),
        sa.Column('issuer_vat_id', sa.String(length=40), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('reference', sa.String(length=120), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                  nullable=False),
        sa.CheckConstraint('subtotal_minor >= 0 AND tax_minor >= 0 AND total_minor >= 0',
                           name=op.f('ck_invoice_amounts_nonnegative')),
        sa.ForeignKeyConstraint(['credited_invoice_id'], ['invoice.id'],
                                name=op.f('fk_invoice_credited_invoice_id_invoice')),
        sa.ForeignKeyConstraint(['order_id'], ['customer_order.id'], name=op.f('fk_invoice_order_id_customer_order')),
        sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                                name=op.f('fk_invoice_organization_id_organization')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice')),
        sa.UniqueConstraint('dedupe_key', name=op.f('uq_invoice_dedupe_key')),
        sa.UniqueConstraint('number', name=op.f('uq_invoice_number')),
        sa.UniqueConstraint('series', 'year', 'sequence', name=op.f('uq_invoice_series_year_sequence')),
    )
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_credited_invoice_id'), ['credited_invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_organization_id'), ['organization_id'], unique=False)
    op.create_table(
        'invoice_line',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('invoice_id', sa.Integer(), nullable=False),
        sa.Column('order_line_id', sa.Integer(), nullable=True),
        sa.Column('description', sa.String(length=300), nullable=False),
        sa.Column('seller_name', sa.String(length=200), nullable=False),
        sa.Column('platform_name', sa.String(length=200), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('unit_price_minor', sa.Integer(), nullable=False),
        sa.Column('tax_minor', sa.Integer(), nullable=False),
        sa.Column('total_minor', sa.Integer(), nullable=False),
        sa.CheckConstraint('quantity > 0', name=op.f('ck_invoice_line_quantity_positive')),
        sa.CheckConstraint('unit_price_minor >= 0 AND total_minor >= 0 AND tax_minor >= 0',
                           name=op.f('ck_invoice_line_amounts_nonnegative')),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_invoice_line_invoice_id_invoice'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['order_line_id'], ['order_line.id'],
                                name=op.f('fk_invoice_line_order_line_id_order_line'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_line')),
    )
    with op.batch_alter_table('invoice_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_line_invoice_id'), ['invoice_id'], unique=False)
    # the receipt mail carries the invoice PDF: files are stored with the queued message and the delivery
    for table in ('mail_message', 'outbox_delivery'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('attachments', sa.JSON(), server_default='[]', nullable=False))


def downgrade():
    for table in ('outbox_delivery', 'mail_message'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('attachments')
    with op.batch_alter_table('invoice_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_line_invoice_id'))
    op.drop_table('invoice_line')
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_organization_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_order_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_credited_invoice_id'))
    op.drop_table('invoice')
    op.drop_table('document_sequence')
    op.drop_table('billing_details')
