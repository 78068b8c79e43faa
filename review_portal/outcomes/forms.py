from flask_wtf import FlaskForm
from wtforms import RadioField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from review_portal.outcomes.models import CONFIRMED_BY, CONFIRMED_OPINION, RECOMMENDATION_FOLLOWED


class OutcomeForm(FlaskForm):
    recommendation_followed = RadioField("Was the second opinion's recommendation followed?",
                                         choices=list(RECOMMENDATION_FOLLOWED.items()), validators=[DataRequired()])
    final_diagnosis = TextAreaField("Final diagnosis", validators=[DataRequired(), Length(max=4000)])
    confirmed_opinion = RadioField("The opinions differed. Which one was confirmed?",
                                   choices=list(CONFIRMED_OPINION.items()), validators=[Optional()])
    confirmed_by = RadioField("Confirmed by", choices=list(CONFIRMED_BY.items()), validators=[Optional()])
    confirmed_by_note = StringField("How (if other)", validators=[Optional(), Length(max=500)])
    submit = SubmitField("Send answer")
