"""Forms of the account pages: shape checks only; the rules live in the services."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, NumberRange, Optional

from app.services.runs import MAX_INPUT_CHARS

try:  # wtforms 3.3 deprecates (value, label) tuples as choices
    from wtforms.fields import SelectChoice
except ImportError:  # pragma: no cover - older wtforms
    def SelectChoice(value: str, label: str):  # noqa: N802
        return (value, label)


class ActionForm(FlaskForm):
    """A button that POSTs (revoke, cancel, mark read): the CSRF token is its only field."""


class OrganizationSwitchForm(FlaskForm):
    organization_id = IntegerField("Organization", validators=[InputRequired()])
    next = HiddenField()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=10, max=200)],
                                 description="At least 10 characters, and not a common or easily guessed password. "
                                             "Other signed-in sessions will be signed out.")
    confirm_password = PasswordField("Repeat the new password",
                                     validators=[DataRequired(), EqualTo("new_password", "The passwords do not match.")])


class TokenCreateForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=80)],
                       description="What the token is for, e.g. “CI deploy script”.")
    expires_in_days = SelectField(
        "Expires", choices=[SelectChoice("30", "In 30 days"), SelectChoice("90", "In 90 days"), SelectChoice("365", "In a year"),
                 SelectChoice("", "Never")],
        default="90",
    )


class ApiKeyLimitsForm(FlaskForm):
    rate_limit = StringField("Request rate (optional)", validators=[Optional(), Length(max=40)],
                             description="How often this key may call, e.g. “60 per minute”. Empty: the default rate.")
    monthly_credit_quota = IntegerField(
        "Monthly credit quota (optional)", validators=[Optional(), NumberRange(min=1, max=1_000_000_000)],
        description="The most credits this key's runs may use in a calendar month. Empty: no quota.")


class ApiKeyCreateForm(ApiKeyLimitsForm):
    name = StringField("Key name", validators=[DataRequired(), Length(max=80)],
                       description="Where the key is used, e.g. “Help desk integration”.")


class ConnectorForm(FlaskForm):
    kind = StringField("Connector", validators=[DataRequired(), Length(max=40)],
                       description="The system to connect, in lowercase: e.g. zendesk, hubspot, imap.")
    settings = TextAreaField("Settings (optional)", validators=[Optional(), Length(max=8000)],
                             description="One per line as name = value, e.g. subdomain = acme. No passwords here.")
    secret = PasswordField("Secret (optional)", validators=[Optional(), Length(max=10_000)],
                           description="An API token or password for the system. It is stored encrypted and never shown again.")


class DocumentForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=100_000)],
                         description="Paste the document’s text. Blank lines separate passages.")


class RunForm(FlaskForm):
    input = TextAreaField("Input", validators=[DataRequired(message="Type an input for the agent."),
                                               Length(max=MAX_INPUT_CHARS)])
    spending_cap = IntegerField("Spending cap for this run (optional)",
                                validators=[Optional(), NumberRange(min=1, max=1_000_000)],
                                description="The most this run may cost, in credits.")
    idempotency_key = HiddenField()


class LowBalanceForm(FlaskForm):
    threshold = IntegerField("Notify me when the balance falls below", validators=[Optional(), NumberRange(min=1, max=10_000_000)],
                             description="In credits. Leave empty to switch notifications off.")
