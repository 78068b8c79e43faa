"""The lead's form for the summary for the patient, and its signing form."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, FieldList, HiddenField, PasswordField, SelectMultipleField, TextAreaField, widgets
from wtforms.validators import DataRequired, Length, Optional

from review_portal.cases.questions import MAX_PATIENT_QUESTIONS
from review_portal.letters.summary import MAX_ANSWER, MAX_SECTION, SECTION_LABELS

SUMMARY_ATTESTATION = "I wrote this summary for the patient, and it agrees with the signed opinion."


def _section(name: str) -> TextAreaField:
    return TextAreaField(SECTION_LABELS[name], validators=[Optional(), Length(max=MAX_SECTION)])


class PatientSummaryForm(FlaskForm):
    version = HiddenField()
    what_reviewed = _section("what_reviewed")
    conclusion = _section("conclusion")
    treatment = _section("treatment")
    answers = FieldList(TextAreaField("Answer", validators=[Optional(), Length(max=MAX_ANSWER)]),
                        max_entries=MAX_PATIENT_QUESTIONS)
    # Choices: the png keys of the case's key images (set by the view); none are shown unless picked.
    key_images = SelectMultipleField("Key images to show the patient (optional)", choices=[], validate_choice=False,
                                     widget=widgets.ListWidget(prefix_label=False),
                                     option_widget=widgets.CheckboxInput())


class SummarySignForm(FlaskForm):
    version = HiddenField()
    attest = BooleanField(SUMMARY_ATTESTATION, validators=[DataRequired(message="Confirm the attestation to sign.")])
    password = PasswordField("Your password", validators=[DataRequired(message="Enter your password to sign."),
                                                          Length(max=1024)])
