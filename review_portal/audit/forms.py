from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class AuditSearchForm(FlaskForm):
    """A GET search: nothing changes, so no CSRF token (and the URL can be bookmarked)."""

    class Meta:
        csrf = False

    patient = StringField("Patient (MRN or name)", validators=[Optional(), Length(max=200)])
    user = StringField("User (e-mail)", validators=[Optional(), Length(max=255)])
    case = StringField("Case (reference or id)", validators=[Optional(), Length(max=32)])
    action = StringField("Action starts with", validators=[Optional(), Length(max=64)])
    outcome = SelectField("Outcome", choices=[("", "Any"), ("success", "Success"), ("failed", "Failed"), ("denied", "Denied")],
                          validators=[Optional()])
    since = DateField("From (date)", validators=[Optional()])
    until = DateField("Until (date, inclusive)", validators=[Optional()])
    flagged = BooleanField("Emergency access only")


class ReviewForm(FlaskForm):
    note = TextAreaField("Review note", validators=[Optional(), Length(max=2000)])


class DisclosuresForm(FlaskForm):
    class Meta:
        csrf = False

    patient_mrn = StringField("Patient MRN", validators=[DataRequired(), Length(max=64)])
    since = DateField("From (date)", validators=[Optional()])
    until = DateField("Until (date, inclusive)", validators=[Optional()])


class ActivitySearchForm(FlaskForm):
    """The coordinator's activity search: a GET, read-only, so no CSRF token."""

    class Meta:
        csrf = False

    case = StringField("Case reference", validators=[Optional(), Length(max=32)])
    person = StringField("Person (name or e-mail)", validators=[Optional(), Length(max=200)])
    since = DateField("From (date)", validators=[Optional()])
    until = DateField("Until (date, inclusive)", validators=[Optional()])
