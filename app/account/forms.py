"""Forms of the account pages: shape checks only; the rules live in the services."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, NumberRange, Optional

from app.services.runs import MAX_INPUT_CHARS

try:  # wtforms 3.3 deprecates (value, label) tuples as choices
    from wtforms.fields import SelectChoice
except ImportError:  # pragma: no cover - older wtforms
    def SelectChoice(value: str, label: str):  # noqa: N802
        return (value, label)


class ActionForm(FlaskForm):
    """A button that POSTs (revoke, cancel, mark read): the CSRF token is its only field."""


class RenewalPaymentForm(FlaskForm):
    """Pay an open renewal with another card (test mode on the local backend)."""

    card_number = StringField("Card number", validators=[DataRequired("Enter the card number."), Length(max=32)],
                              render_kw={"inputmode": "numeric", "autocomplete": "cc-number",
                                         "placeholder": "4242 4242 4242 4242"})
    expiry = StringField("Expiry (MM/YY)", validators=[DataRequired("Enter the expiry date."), Length(max=7)],
                         render_kw={"autocomplete": "cc-exp", "placeholder": "12/30", "inputmode": "numeric"})
    cvc = StringField("Security code (CVC)", validators=[DataRequired("Enter the security code."), Length(max=4)],
                      render_kw={"autocomplete": "cc-csc", "inputmode": "numeric", "placeholder": "123"})
    save_card = BooleanField("Save this card for renewals", default=True)


class PlanChangeForm(FlaskForm):
    plan_id = SelectField("New plan", coerce=int, validators=[InputRequired("Choose a plan.")])


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
    conversation_id = HiddenField()  # the console's conversation: its turns share the agent's memory


class LowBalanceForm(FlaskForm):
    threshold = IntegerField("Notify me when the balance falls below", validators=[Optional(), NumberRange(min=1, max=10_000_000)],
                             description="In credits. Leave empty to switch notifications off.")


class BillingDetailsForm(FlaskForm):
    """Who invoices are addressed to; the rules (country codes, VAT ID shape) live in services.invoices."""

    name = StringField("Name on invoices", validators=[DataRequired(message="Enter the name invoices are addressed to."),
                                                      Length(max=120)])
    company = StringField("Company (optional)", validators=[Optional(), Length(max=200)])
    address = TextAreaField("Billing address", validators=[DataRequired(message="Enter the billing address."),
                                                           Length(max=500)],
                            description="Street, postal code and city, one per line.")
    country = StringField("Country", validators=[DataRequired(message="Enter the country."), Length(max=2)],
                          description="The two-letter code, e.g. DE, FR or US.")
    vat_id = StringField("VAT ID (optional)", validators=[Optional(), Length(max=30)],
                         description="With its country prefix, e.g. DE123456789. Shown on your invoices.")


ROLE_CHOICES = [SelectChoice("member", "Member"), SelectChoice("admin", "Admin"), SelectChoice("owner", "Owner")]


class OrganizationCreateForm(FlaskForm):
    name = StringField("Organization name", validators=[DataRequired(), Length(max=120)],
                       description="Your team or company, e.g. “Acme Support”. You become its owner.")


class InvitationForm(FlaskForm):
    email = StringField("Email address", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, default="member",
                       description="Admins invite and manage members; only owners manage owners.")


class MemberRoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
