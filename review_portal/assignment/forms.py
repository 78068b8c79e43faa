from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from review_portal.assignment.models import DECLINE_REASONS, MAX_CAPACITY, READING_AREAS
from review_portal.auth.models import SPECIALTY_LABELS
from review_portal.cases.models import CANCER_SITES


class ReassignForm(FlaskForm):
    reviewer_id = SelectField("New reviewer", coerce=int, validators=[DataRequired(message="Choose a reviewer.")])
    override_reason = StringField("Reason for overriding the match", validators=[Optional(), Length(max=300)])
    note = StringField("Note to the reviewer", validators=[Optional(), Length(max=300)])


class ExtendDeadlineForm(FlaskForm):
    business_days = IntegerField("Extend by (business days)", default=2, validators=[
        DataRequired(message="Say by how many business days."),
        NumberRange(min=1, max=30, message="Extend by 1 to 30 business days.")])
    reason = StringField("Reason", validators=[DataRequired(message="Say why the deadline is extended."),
                                               Length(max=300)])


class DeclineForm(FlaskForm):
    reason = SelectField("Why do you decline?", choices=[("", "Choose…")] + list(DECLINE_REASONS.items()),
                         validators=[DataRequired(message="Choose why you decline.")])
    note = StringField("Note (optional)", validators=[Optional(), Length(max=500)])


class AddReviewForm(FlaskForm):
    # The active disciplines, set by `offer` (data an administrator edits).
    discipline = SelectField("Review by", choices=[], validators=[DataRequired(message="Choose a discipline.")])

    def offer(self, disciplines) -> AddReviewForm:
        self.discipline.choices = [("", "Choose…")] + [(d.key, d.label) for d in disciplines]
        return self


class ReleaseLetterForm(FlaskForm):
    why = StringField("Why the letter may go now", validators=[DataRequired(message="Say why."), Length(max=500)])


class CompleteReviewForm(FlaskForm):
    findings = TextAreaField("Your findings", validators=[DataRequired(message="Write your findings."), Length(max=8000)])


class OutOfOfficeForm(FlaskForm):
    starts_on = DateField("From", validators=[DataRequired(message="Give the first day away.")])
    ends_on = DateField("Until (inclusive)", validators=[DataRequired(message="Give the last day away.")])
    note = StringField("Note", validators=[Optional(), Length(max=200)])


def _checkboxes(label, choices):
    # No `required`: the browser would insist on every box. The service decides what may be empty.
    return SelectMultipleField(label, choices=list(choices), widget=widgets.ListWidget(prefix_label=False),
                               option_widget=widgets.CheckboxInput())


class ReviewerProfileForm(FlaskForm):
    specialty = SelectField("Specialty", choices=[("", "Choose…")] + [(k.value, v) for k, v in SPECIALTY_LABELS.items()],
                            validators=[DataRequired(message="Choose a specialty.")])
    sites = _checkboxes("Cancer sites reviewed", CANCER_SITES.items())
    reading_areas = _checkboxes("Reading areas (radiologists)", READING_AREAS.items())
    institution_id = SelectField("Institution", coerce=int, validators=[DataRequired(message="Choose an institution.")])
    capacity = IntegerField("Capacity (most open reviews at once)",
                            validators=[Optional(), NumberRange(min=0, max=MAX_CAPACITY,
                                                                message=f"Capacity is a whole number from 0 to {MAX_CAPACITY}.")])
