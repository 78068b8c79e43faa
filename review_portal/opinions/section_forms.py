from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from review_portal.opinions.models import PLAN_CONCORDANCE, RADPEER
from review_portal.opinions.section_models import (
    CONCORDANCE_3,
    POSITIONS,
    SECTION_LABELS,
)
from review_portal.opinions.services import MAX_TEXT

SECTION_ATTESTATION = "I reviewed the submitted images and records, and this section is my own."


def _text(name):
    return TextAreaField(SECTION_LABELS[name], validators=[Optional(), Length(max=MAX_TEXT)])


class SectionForm(FlaskForm):
    """Every field of every kind; the page shows, and the view passes on, only the fields of the section's kind."""

    version = HiddenField()
    findings = _text("findings")
    impression = _text("impression")
    radpeer_score = RadioField(SECTION_LABELS["radpeer_score"], choices=list(RADPEER.items()), validators=[Optional()])
    radpeer_comment = _text("radpeer_comment")
    staging = StringField(SECTION_LABELS["staging"], validators=[Optional(), Length(max=MAX_TEXT)])
    report_review = _text("report_review")
    histology_concordance = RadioField(SECTION_LABELS["histology_concordance"], choices=list(CONCORDANCE_3.items()),
                                       validators=[Optional()])
    biomarker_concordance = RadioField(SECTION_LABELS["biomarker_concordance"], choices=list(CONCORDANCE_3.items()),
                                       validators=[Optional()])
    comment = _text("comment")
    plan_concordance = RadioField(SECTION_LABELS["plan_concordance"], choices=list(PLAN_CONCORDANCE.items()),
                                  validators=[Optional()])
    plan = _text("plan")
    rationale = _text("rationale")


class SectionSignForm(FlaskForm):
    version = HiddenField()
    attest = BooleanField(SECTION_ATTESTATION, validators=[DataRequired(message="Confirm the attestation to sign.")])
    password = PasswordField("Your password", validators=[DataRequired(message="Enter your password to sign."),
                                                          Length(max=1024)])


class SectionAddendumForm(FlaskForm):
    reason = StringField("What the addendum is about", validators=[Optional(), Length(max=300)])
    text = TextAreaField("Section addendum", validators=[DataRequired(message="Write the text of the addendum."),
                                                         Length(max=MAX_TEXT)])
    attest = BooleanField(SECTION_ATTESTATION, validators=[DataRequired(message="Confirm the attestation to sign.")])
    password = PasswordField("Your password", validators=[DataRequired(message="Enter your password to sign."),
                                                          Length(max=1024)])


class WaiveSectionForm(FlaskForm):
    reason = StringField("Why the consensus may go without this section",
                         validators=[DataRequired(message="Say why the section is waived."), Length(max=500)])


class PositionForm(FlaskForm):
    position = RadioField("Position on the consensus", choices=list(POSITIONS.items()),
                          validators=[DataRequired(message="Choose agree or dissent.")])
    quote_section = BooleanField("Quote the dissent from the section")
    dissent_text = TextAreaField("The dissent, in the contributor's own words", validators=[Optional(), Length(max=MAX_TEXT)])


class ChairForm(FlaskForm):
    chair_id = SelectField("Chair", coerce=int, validators=[DataRequired(message="Choose the chair.")])
    reason = StringField("Why this chair", validators=[Optional(), Length(max=500)])
