"""Seller forms: shape checks only; the publishing rules live in app.services.offerings."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField, DateField, FormField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.form import Form
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.models import CATEGORIES, PLAN_TIERS
from app.models.catalog import DEFAULT_CONCURRENT_RUNS, DEFAULT_CONCURRENT_RUNS_PER_WALLET
from app.services.offerings import RUNTIME_KINDS, SELLER_FACET_GROUPS
from app.services.text_rules import TextRuleError, refuse_spoofing_characters

CATEGORY_LABELS = {"agents": "Agent", "apps": "App", "assistants": "Assistant", "automations": "Automation"}
RUNTIME_LABELS = {"builtin": "Built-in runtime", "langflow": "Langflow flow"}


def as_choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms choices."""
    return [SelectChoice(value, label) for value, label in pairs]


def no_spoofing_characters(form, field) -> None:
    """A name others read: no text-direction controls or invisible characters (the field's error)."""
    try:
        refuse_spoofing_characters(field.data, field=field.name)
    except TextRuleError as exc:
        raise ValidationError(exc.message) from None


class MultiCheckboxField(SelectMultipleField):
    """Facet values as a list of checkboxes (rendered inside a fieldset by the template)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form):
        # The service checks the values against the vocabulary and names the group in its error.
        pass


class OfferingForm(FlaskForm):
    publisher_id = SelectField("Publisher", coerce=int, validators=[InputRequired()])
    name = StringField("Name", validators=[DataRequired(), Length(max=120), no_spoofing_characters])
    slug = StringField(
        "Address (slug)", validators=[Optional(), Length(max=140)],
        description="Lowercase letters, digits and hyphens. Leave empty to generate it from the name.",
    )
    summary = StringField("Summary", validators=[DataRequired(), Length(max=280), no_spoofing_characters],
                          description="One line for the catalog card, up to 280 characters.")
    description_md = TextAreaField("Description", validators=[Length(max=20_000)],
                                   description="Markdown: ## headings, **bold**, lists, links and tables.")
    category = SelectField("Category", choices=as_choices((c, CATEGORY_LABELS[c]) for c in CATEGORIES))
    outcome = MultiCheckboxField("Outcomes")
    role = MultiCheckboxField("Roles")
    capability = MultiCheckboxField("Capabilities")
    pricing = MultiCheckboxField("Pricing")
    trial_days = IntegerField("Free trial days", default=0, validators=[InputRequired()],
                              description="0 means no free trial.")
    trial_credits = IntegerField("Trial credits", default=0, validators=[InputRequired()],
                                 description="Credits the trial comes with.")
    # the first version, on the create form only
    version = StringField("First version", default="1.0.0", validators=[Optional(), Length(max=32)])
    runtime_kind = SelectField("Runtime", choices=as_choices((k, RUNTIME_LABELS[k]) for k in RUNTIME_KINDS))
    runtime_ref = StringField("Agent or flow id", validators=[Optional(), Length(max=200)],
                              description="The built-in agent's name, or the Langflow flow id.")

    FACET_FIELDS = SELLER_FACET_GROUPS

    def set_vocabulary(self, vocabulary: dict[str, list]) -> None:
        for group in SELLER_FACET_GROUPS:
            values = vocabulary.get(group, [])
            if group == "pricing":
                values = [v for v in values if v.slug != "free-trial"]
            getattr(self, group).choices = as_choices((v.slug, v.label) for v in values)

    def facets(self) -> dict[str, list[str]]:
        return {group: list(getattr(self, group).data or []) for group in SELLER_FACET_GROUPS}


class OfferingEditForm(OfferingForm):
    """The same listing fields; the publisher and the versions are managed elsewhere."""

    publisher_id = None
    version = None
    runtime_kind = None
    runtime_ref = None


class VersionForm(FlaskForm):
    version = StringField("Version", validators=[DataRequired(), Length(max=32)],
                          description="MAJOR.MINOR.PATCH, greater than the latest version.")
    changelog = TextAreaField("What changed", validators=[Length(max=5000)])
    runtime_kind = SelectField("Runtime", choices=as_choices((k, RUNTIME_LABELS[k]) for k in RUNTIME_KINDS))
    runtime_ref = StringField("Agent or flow id", validators=[DataRequired(), Length(max=200)])


def _optional_int(value):
    if value in (None, ""):
        return None
    return int(value)


class TierForm(Form):
    """One plan tier (a sub-form: the outer form carries the CSRF token)."""

    offered = BooleanField("Offer this tier", default=True)
    name = StringField("Plan name", validators=[Length(max=60), no_spoofing_characters])
    price = StringField("Price", validators=[Length(max=20)],
                        description="In the currency's major unit, e.g. 29.00.")
    currency = StringField("Currency", default="USD", validators=[Length(max=3)])
    included_credits = IntegerField("Included credits", default=0, validators=[Optional()])
    credits_per_run = IntegerField("Credits per run", default=1, validators=[Optional()])
    max_runs_per_period = IntegerField("Runs per month", validators=[Optional()],
                                       description="Leave empty for unlimited.")
    max_concurrent_runs = IntegerField("Runs at once per instance", default=DEFAULT_CONCURRENT_RUNS,
                                       validators=[Optional()],
                                       description="More runs started while this many are in progress wait and retry.")
    max_concurrent_runs_per_wallet = IntegerField(
        "Runs at once per buyer", default=DEFAULT_CONCURRENT_RUNS_PER_WALLET, validators=[Optional()],
        description="Across all of one buyer organization's instances.")
    features = TextAreaField("Features", validators=[Length(max=2000)], description="One feature per line.")


class PlansForm(FlaskForm):
    starter = FormField(TierForm, label="Starter")
    pro = FormField(TierForm, label="Pro")
    enterprise = FormField(TierForm, label="Enterprise")

    TIERS = PLAN_TIERS


class ActionForm(FlaskForm):
    """A POST button (submit, archive): only the CSRF token."""


class PublisherForm(FlaskForm):
    name = StringField("Organization name", validators=[DataRequired(), Length(max=120), no_spoofing_characters])


class SalesFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter

    offering = SelectField("Offering", coerce=_optional_int, validators=[Optional()])
    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])

    def validate_end(self, field):
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("The end date is before the start date.")


class PeriodForm(FlaskForm):
    class Meta:
        csrf = False

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])

    def validate_end(self, field):
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("The end date is before the start date.")
        if field.data and self.start.data and (field.data - self.start.data).days > 366:
            raise ValidationError("Choose a period of at most a year.")
