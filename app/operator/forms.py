"""Operator forms: shape checks only; the review rules live in app.services.offerings."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.models import OfferingStatus

STATUS_LABELS = {"draft": "Draft", "in_review": "In review", "published": "Published", "archived": "Archived"}


def as_choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class ActionForm(FlaskForm):
    """A POST button (approve, archive, retry sync): only the CSRF token."""


class RejectForm(FlaskForm):
    reason = TextAreaField(
        "What the seller should change", validators=[DataRequired(message="Tell the seller what to change."),
                                                     Length(max=2000)],
        description="The seller sees this on their offering page.",
    )


class _GetForm(FlaskForm):
    class Meta:
        csrf = False  # GET filters change nothing


class OfferingFilterForm(_GetForm):
    q = StringField("Search", validators=[Optional(), Length(max=120)])
    status = SelectField("Status", choices=as_choices([("", "Any status")] + [(s.value, STATUS_LABELS[s.value]) for s in OfferingStatus]),
                         validators=[Optional()])
    sync = SelectField("Store sync", choices=as_choices([("", "Any"), ("synced", "Synced"), ("pending", "Pending"),
                                                          ("failed", "Failed")]), validators=[Optional()])


class OrganizationFilterForm(_GetForm):
    q = StringField("Search", validators=[Optional(), Length(max=120)])


class AuditFilterForm(_GetForm):
    action = SelectField("Action", validators=[Optional()])
    actor = StringField("Actor", validators=[Optional(), Length(max=254)], description="Email or part of it.")
    organization = IntegerField("Organization id", validators=[Optional(), NumberRange(min=1)])
    target_type = StringField("Target type", validators=[Optional(), Length(max=32)])
    target_id = StringField("Target id", validators=[Optional(), Length(max=64)])
    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])

    def validate_end(self, field):
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("The end date is before the start date.")


class OrderSearchForm(_GetForm):
    q = StringField("Search orders", validators=[Optional(), Length(max=120)],
                    description="Order number, buyer's email or organization name.")


class RefundForm(FlaskForm):
    """Refund one order line: an amount in the order's currency and a reason the buyer reads."""

    line_id = IntegerField("Line", validators=[DataRequired(), NumberRange(min=1)])
    amount = StringField("Amount to refund", validators=[DataRequired(message="Enter the amount to refund."),
                                                        Length(max=20)],
                         description="In the order's currency, e.g. 12.50.")
    reason = TextAreaField("Reason", validators=[DataRequired(message="Say why the order is refunded."),
                                                 Length(max=1000)],
                           description="The buyer reads this in the refund mail.")


class PublisherFeeForm(FlaskForm):
    publisher_id = IntegerField("Publisher", validators=[DataRequired(), NumberRange(min=1)])
    percent = StringField("Platform fee (%)", validators=[Optional(), Length(max=8)],
                          description="Leave empty for the default fee. Only sales from now on pay it.")


class PayoutForm(FlaskForm):
    publisher_id = IntegerField("Publisher", validators=[DataRequired(), NumberRange(min=1)])
    currency = SelectField("Currency", validators=[DataRequired()])
    amount = StringField("Amount paid", validators=[DataRequired(message="Enter the amount paid."), Length(max=20)],
                         description="e.g. 1250.00")
    paid_on = DateField("Paid on", validators=[DataRequired(message="Enter the date the money was sent.")])
    reference = StringField("Transfer reference", validators=[DataRequired(message="Enter the transfer's reference."),
                                                              Length(max=120)])


class DeclinePublisherForm(FlaskForm):
    reason = TextAreaField(
        "Reason", validators=[Length(max=1000)],
        description="Sent to the applicant: say what to change so they can apply again.",
    )
