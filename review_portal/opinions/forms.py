from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, RadioField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from review_portal.opinions.models import DIAGNOSIS_CONCORDANCE, PLAN_CONCORDANCE


class OpinionForm(FlaskForm):
    version = HiddenField()
    diagnosis_concordance = RadioField("Diagnosis", choices=list(DIAGNOSIS_CONCORDANCE.items()), validators=[Optional()])
    plan_concordance = RadioField("Treatment plan", choices=list(PLAN_CONCORDANCE.items()), validators=[Optional()])
    reviewer_diagnosis = TextAreaField("Your diagnosis", validators=[Optional(), Length(max=8000)])
    recommended_plan = TextAreaField("Recommended plan", validators=[Optional(), Length(max=8000)])
    rationale = TextAreaField("Rationale", validators=[Optional(), Length(max=16000)])
    further_tests = TextAreaField("Recommended further tests", validators=[Optional(), Length(max=8000)])


class SignForm(FlaskForm):
    attest = BooleanField("I reviewed the submitted images and records, and this opinion is my own.",
                          validators=[DataRequired(message="Confirm the attestation to sign.")])
    password = PasswordField("Your password", validators=[DataRequired(message="Enter your password to sign."), Length(max=1024)])
