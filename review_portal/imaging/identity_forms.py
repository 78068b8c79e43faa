"""The form by which the referrer or a coordinator answers "is this the same patient?"."""
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length

DECISIONS = [("same_patient", "Same patient"), ("wrong_study", "Wrong study: remove it and its images")]


class IdentityDecisionForm(FlaskForm):
    decision = RadioField("Decision", choices=DECISIONS, validators=[InputRequired(message="Choose same patient or wrong study.")])
    reason = TextAreaField("Reason", validators=[DataRequired(message="Give the reason for your decision."),
                                                 Length(max=1000)])
