"""Seller forms: shape checks only; the publishing rules live in app.services.offerings."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
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


def runtime_value(kind: str, ref: str) -> str:
    return f"{kind}:{ref}"


class RuntimeField(SelectField):
    """One list of what a version can run: the built-in agents and the configured Langflow's flows.

    Values are "kind:ref". The list is set per request (`set_runtime_choices`); a value not in it is
    left for the service to check, so a flow Langflow no longer lists is named in a clear error."""

    def __init__(self, label="Agent or flow", **kwargs):
        kwargs.setdefault("validators", [DataRequired(message="Choose a built-in agent or a Langflow flow.")])
        super().__init__(label, validate_choice=False, choices=[], **kwargs)

    def kind_and_ref(self) -> tuple[str, str]:
        kind, _, ref = (self.data or "").partition(":")
        return (kind, ref) if kind in RUNTIME_KINDS else ("", self.data or "")


def set_runtime_choices(field: RuntimeField, choices, current: tuple[str, str] | None = None) -> None:
    """Group the choices (agents, then flows as "name (id)"); the current reference stays choosable when
    the list lacks it, e.g. while Langflow cannot be reached."""
    groups = {
        "Built-in agents": [(runtime_value("builtin", r.ref), r.name) for r in choices.agents],
        "Langflow flows": [(runtime_value("langflow", r.ref), f"{r.name} ({r.ref})") for r in choices.flows],
    }
    listed = {value for options in groups.values() for value, _ in options}
    if current is not None and runtime_value(*current) not in listed:
        kind, ref = current
        groups["Current"] = [(runtime_value(kind, ref), f"{RUNTIME_LABELS.get(kind, kind)}: {ref} (as now)")]
    field.choices = {label: options for label, options in groups.items() if options}


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
    runtime = RuntimeField()

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
    runtime = None


class VersionForm(FlaskForm):
    version = StringField("Version", validators=[DataRequired(), Length(max=32)],
                          description="MAJOR.MINOR.PATCH. A patch or minor release (1.2.1, 1.3.0) reaches every "
                                      "buyer on 1.x at their next run; a new major (2.0.0) is offered to them as "
                                      "an upgrade they accept.")
    changelog = TextAreaField("What changed", validators=[Length(max=5000)])
    runtime = RuntimeField()
    output_component = StringField(
        "Output component", validators=[Optional(), Length(max=200)],
        description="Langflow only: the id of the output buyers read (e.g. ChatOutput-yK0AU) when the flow has "
                    "several. Leave empty for its first output.")
    tweaks = TextAreaField(
        "Tweaks", validators=[Optional(), Length(max=20_000)],
        description='Langflow only: settings this version overrides, as JSON: {"component id": {"field": value}}. '
                    "Fields that hold code cannot be tweaked.")


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
    interval = SelectField("Billed", choices=as_choices([("month", "Monthly"), ("year", "Yearly")]),
                           default="month", description="The price pays for one period of this length; it renews each period.")
    included_credits = IntegerField("Included credits", default=0, validators=[Optional()],
                                    description="For each billing period.")
    rollover_credits = BooleanField("Unused included credits carry over to the next period", default=False)
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


class LogoUploadForm(FlaskForm):
    logo = FileField("Logo", description="A square PNG, JPEG or WebP image, shown on cards instead of the letter.")


class ScreenshotUploadForm(FlaskForm):
    screenshot = FileField("Screenshot", description="PNG, JPEG or WebP; up to six per offering.")
    alt_text = StringField("What it shows", validators=[Length(max=200)],
                           description="Read aloud to people who can't see the image, e.g. “The run console "
                                       "answering a refund question”.")


class MoveForm(FlaskForm):
    direction = SelectField("Move", choices=as_choices([("up", "Earlier"), ("down", "Later")]))


class AltTextForm(FlaskForm):
    alt_text = StringField("Description", validators=[Length(max=200)])


class WebhookEndpointForm(FlaskForm):
    """A seller webhook endpoint: the address and which events to send there."""

    url = StringField("Endpoint URL", validators=[DataRequired(), Length(max=2000)],
                      description="Where we POST each event, e.g. https://example.com/webhooks/digitlify.")
    description = StringField("Description (optional)", validators=[Optional(), Length(max=200)])
    events = MultiCheckboxField("Events to send")
    is_active = BooleanField("Send events to this endpoint", default=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from app.services.seller_webhooks import EVENTS

        self.events.choices = as_choices((name, f"{name}: {text}") for name, text in EVENTS.items())
