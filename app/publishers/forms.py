"""Publisher forms: shape checks only; the rules live in app.services.publishers and app.services.media."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, StringField, TextAreaField
from wtforms.validators import Length

LOGO_HINT = "Optional. A square PNG, JPEG or WebP image; we resize it to 512 pixels."


class PublisherApplicationForm(FlaskForm):
    name = StringField("Publisher name", validators=[Length(max=120)],
                       description="How buyers will see you, e.g. your company's name.")
    slug = StringField("Vendor page address", validators=[Length(max=60)],
                       description="Lowercase letters, digits and hyphens: your page will be /vendors/<this>.")
    website = StringField("Website", validators=[Length(max=300)], description="Starting with https://.")
    support_email = StringField("Support email", validators=[Length(max=254)],
                                description="Where buyers write for help with your offerings.")
    description = TextAreaField("About you", validators=[Length(max=2000)],
                                description="Optional. A few sentences for your vendor page.")
    logo = FileField("Logo", description=LOGO_HINT)


class TermsForm(FlaskForm):
    terms_version = HiddenField()
    accept = BooleanField("I accept the seller terms on behalf of my publisher organization")


class PublisherProfileForm(FlaskForm):
    name = StringField("Publisher name", validators=[Length(max=120)])
    description = TextAreaField("About you", validators=[Length(max=2000)])
    website = StringField("Website", validators=[Length(max=300)], description="Starting with https://.")
    support_email = StringField("Support email", validators=[Length(max=254)])
    logo = FileField("Logo", description="Optional: leave empty to keep the current logo. " + LOGO_HINT)
