from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional


class ReassignForm(FlaskForm):
    reviewer_id = SelectField("New reviewer", coerce=int, validators=[DataRequired(message="Choose a reviewer.")])
    note = StringField("Note", validators=[Optional(), Length(max=300)])
