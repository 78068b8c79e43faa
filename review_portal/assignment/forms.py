from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from review_portal.assignment.models import DECLINE_REASONS
from review_portal.cases.models import REVIEW_TYPES


class ReassignForm(FlaskForm):
    reviewer_id = SelectField("New reviewer", coerce=int, validators=[DataRequired(message="Choose a reviewer.")])
    note = StringField("Note", validators=[Optional(), Length(max=300)])


class DeclineForm(FlaskForm):
    reason = SelectField("Why do you decline?", choices=[("", "Choose…")] + list(DECLINE_REASONS.items()),
                         validators=[DataRequired(message="Choose why you decline.")])
    note = StringField("Note (optional)", validators=[Optional(), Length(max=500)])


class AddReviewForm(FlaskForm):
    review_type = SelectField("Review", choices=[("", "Choose…")] + list(REVIEW_TYPES.items()),
                              validators=[DataRequired(message="Choose a review type.")])


class ReleaseLetterForm(FlaskForm):
    why = StringField("Why the letter may go now", validators=[DataRequired(message="Say why."), Length(max=500)])


class CompleteReviewForm(FlaskForm):
    findings = TextAreaField("Your findings", validators=[DataRequired(message="Write your findings."), Length(max=8000)])


class OutOfOfficeForm(FlaskForm):
    starts_on = DateField("From", validators=[DataRequired(message="Give the first day away.")])
    ends_on = DateField("Until (inclusive)", validators=[DataRequired(message="Give the last day away.")])
    note = StringField("Note", validators=[Optional(), Length(max=200)])


class ReviewChoiceForm(FlaskForm):
    review_id = HiddenField()
