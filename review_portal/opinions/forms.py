from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from review_portal.errors import InvalidInput
from review_portal.opinions.models import DIAGNOSIS_CONCORDANCE, PLAN_CONCORDANCE, RADPEER, TRIAL_CONSIDERATION, URGENCY
from review_portal.opinions.services import MAX_CODE, MAX_TEXT

ATTESTATION = "I reviewed the submitted images and records, and this opinion is my own."


def _text(label, **kw):
    return TextAreaField(label, validators=[Optional(), Length(max=MAX_TEXT)], **kw)


class OpinionForm(FlaskForm):
    version = HiddenField()
    # Oncology opinion.
    diagnosis_concordance = RadioField("Diagnosis", choices=list(DIAGNOSIS_CONCORDANCE.items()), validators=[Optional()])
    reviewer_diagnosis = _text("Your diagnosis")
    rationale = _text("Rationale")
    stage_text = StringField("Stage as you see it", validators=[Optional(), Length(max=MAX_TEXT)])
    tnm_t = StringField("T", validators=[Optional(), Length(max=MAX_CODE)])
    tnm_n = StringField("N", validators=[Optional(), Length(max=MAX_CODE)])
    tnm_m = StringField("M", validators=[Optional(), Length(max=MAX_CODE)])
    plan_concordance = RadioField("Treatment plan", choices=list(PLAN_CONCORDANCE.items()), validators=[Optional()])
    recommended_plan = _text("Recommended plan")
    further_tests = _text("Recommended further tests")
    trial_consideration = SelectField("Clinical trial", choices=[("", "Not stated")] + list(TRIAL_CONSIDERATION.items()),
                                      validators=[Optional()])
    clinical_trials = _text("Trials to consider")
    urgency = RadioField("Urgency of action", choices=list(URGENCY.items()), validators=[Optional()])
    # Radiology read.
    findings = _text("Findings")
    impression = _text("Impression")
    radpeer_score = RadioField("Original read (ACR RADPEER)", choices=list(RADPEER.items()), validators=[Optional()])
    radpeer_comment = _text("Comment on the discrepancy")


class SignForm(FlaskForm):
    version = HiddenField()
    attest = BooleanField(ATTESTATION, validators=[DataRequired(message="Confirm the attestation to sign.")])
    password = PasswordField("Your password", validators=[DataRequired(message="Enter your password to sign."), Length(max=1024)])


class AddendumForm(FlaskForm):
    reason = StringField("What the addendum is about", validators=[Optional(), Length(max=300)])
    text = TextAreaField("Addendum", validators=[DataRequired(message="Write the text of the addendum."), Length(max=MAX_TEXT)])
    attest = BooleanField(ATTESTATION, validators=[DataRequired(message="Confirm the attestation to sign.")])
    password = PasswordField("Your password", validators=[DataRequired(message="Enter your password to sign."), Length(max=1024)])


def draft_version(value) -> int:
    """The draft version the page was built from; a page opened before any draft existed sends 0."""
    value = (value or "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise InvalidInput("The form is damaged (unknown draft version). Reload the page.")
    return int(value)
