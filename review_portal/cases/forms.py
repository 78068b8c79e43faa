from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    MultipleFileField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Length, Optional

from review_portal.cases.models import CANCER_SITES, HISTORY_KINDS, PRIORITIES, SEXES
from review_portal.cases.questions import MAX_PATIENT_QUESTIONS, MAX_QUESTION_LENGTH

MAX_HISTORY_ENTRIES = 30


def _choices(mapping, prompt):
    return [("", prompt)] + list(mapping.items())


class HistoryEntryForm(Form):
    occurred_on = DateField("Date", validators=[Optional()])
    kind = SelectField("Kind", choices=_choices(HISTORY_KINDS, "Kind…"), validators=[Optional()])
    text = TextAreaField("What happened", validators=[Optional(), Length(max=4000)])


class ReferralForm(FlaskForm):
    patient_name = StringField("Patient name", validators=[DataRequired(), Length(max=200)])
    patient_dob = DateField("Date of birth", validators=[DataRequired(message="Enter the date of birth.")])
    patient_sex = SelectField("Sex", choices=_choices(SEXES, "Choose…"), validators=[DataRequired(message="Choose the patient's sex.")])
    patient_mrn = StringField("Referring MRN", validators=[DataRequired(), Length(max=64)])
    # Choices are the active disciplines, set by `offer` (they are data an administrator edits).
    discipline = SelectField("Discipline needed", choices=[], validate_choice=False,
                             validators=[DataRequired(message="Choose the discipline the question needs.")])
    more_disciplines = SelectMultipleField("Also ask (contributing reviews)", choices=[], validate_choice=False,
                                           widget=widgets.ListWidget(prefix_label=False),
                                           option_widget=widgets.CheckboxInput())
    cancer_site = SelectField("Cancer site", choices=_choices(CANCER_SITES, "Choose…"), validators=[DataRequired(message="Choose a cancer site.")])
    priority = SelectField("Priority", choices=list(PRIORITIES.items()), default="routine", validators=[DataRequired()])
    question = TextAreaField("Question for the reviewer", validators=[DataRequired(), Length(max=4000)])
    diagnosis_in_question = TextAreaField("Diagnosis in question", validators=[DataRequired(), Length(max=4000)])
    plan_in_question = TextAreaField("Treatment plan in question", validators=[DataRequired(), Length(max=4000)])
    history = FieldList(FormField(HistoryEntryForm), min_entries=3, max_entries=MAX_HISTORY_ENTRIES)
    # Optional: the patient's own questions, answered in the summary for the patient.
    patient_questions = FieldList(StringField("Patient question", validators=[Optional(), Length(max=MAX_QUESTION_LENGTH)]),
                                  min_entries=MAX_PATIENT_QUESTIONS, max_entries=MAX_PATIENT_QUESTIONS)
    documents = MultipleFileField("Reports (PDF)")
    scans = MultipleFileField("Scans (DICOM files or a .zip of a study)")

    def offer(self, disciplines) -> ReferralForm:
        """Offer these disciplines (the active ones), in the order given."""
        self.discipline.choices = [("", "Choose…")] + [(d.key, d.label) for d in disciplines]
        self.more_disciplines.choices = [(d.key, d.label) for d in disciplines]
        return self

    @property
    def chosen_disciplines(self) -> tuple[str, ...]:
        """The lead discipline first, then the further ones (without repeating the lead)."""
        return tuple(dict.fromkeys([self.discipline.data or ""] + list(self.more_disciplines.data or [])))

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        offered = {key for key, _ in self.more_disciplines.choices}
        if self.discipline.data and self.discipline.data not in offered:
            self.discipline.errors = list(self.discipline.errors) + ["Choose one of the disciplines offered."]
            ok = False
        if any(key not in offered for key in self.more_disciplines.data or []):
            self.more_disciplines.errors = list(self.more_disciplines.errors) + ["Choose among the disciplines offered."]
            ok = False
        for entry in self.history.entries:
            filled = [entry.form.occurred_on.data, entry.form.kind.data, (entry.form.text.data or "").strip()]
            if any(filled) and not all(filled):
                entry.form.text.errors = list(entry.form.text.errors) + ["Give the date, kind and text of each history entry."]
                ok = False
        return ok


def _understood(what: str) -> BooleanField:
    """The ticked box that confirms a final step (withdraw, cancel, close): without it the POST is refused (400)."""
    return BooleanField(f"I understand that {what} cannot be undone.",
                        validators=[DataRequired(message=f"Confirm that you understand {what} cannot be undone.")])


class WithdrawForm(FlaskForm):
    reason = StringField("Reason", validators=[DataRequired(message="Say why the case is withdrawn."), Length(max=500)])
    confirm = _understood("withdrawing the case")


class CancelForm(FlaskForm):
    reason = StringField("Reason", validators=[DataRequired(message="Say why the case is cancelled."), Length(max=500)])
    confirm = _understood("cancelling the case")


class CloseForm(FlaskForm):
    confirm = _understood("closing the case")


def first_error(form) -> str:
    return next((e for errors in form.errors.values() for e in errors), "Check the form and try again.")


class EmergencyAccessForm(FlaskForm):
    reason = TextAreaField("Why do you need this case now?",
                           validators=[DataRequired(message="State the reason."),
                                       Length(min=15, max=2000, message="Between 15 and 2000 characters.")])


class DisciplineForm(FlaskForm):
    key = StringField("Key", validators=[DataRequired(message="Give a key."), Length(max=32)])
    label = StringField("Name", validators=[DataRequired(message="Give the discipline a name."), Length(max=100)])
    specialty = SelectField("Reviewer specialty it needs", validators=[DataRequired(message="Choose a specialty.")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from review_portal.auth.models import SPECIALTY_LABELS

        self.specialty.choices = [("", "Choose…")] + [(k.value, v) for k, v in SPECIALTY_LABELS.items()]


class RenameDisciplineForm(FlaskForm):
    label = StringField("Name", validators=[DataRequired(message="Give the discipline a name."), Length(max=100)])
