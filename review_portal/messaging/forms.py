from flask_wtf import FlaskForm
from wtforms import BooleanField, MultipleFileField, PasswordField, SelectMultipleField, TextAreaField, widgets
from wtforms.validators import DataRequired, Length, Optional

from review_portal.messaging.models import REQUEST_ITEMS
from review_portal.opinions.forms import ATTESTATION


class MessageForm(FlaskForm):
    body = TextAreaField("Message", validators=[DataRequired(message="Write the message."), Length(max=8000)])


class InformationRequestForm(FlaskForm):
    items = SelectMultipleField("What do you need?", choices=list(REQUEST_ITEMS.items()),
                                widget=widgets.ListWidget(prefix_label=False), option_widget=widgets.CheckboxInput())
    # No `required` here: the browser would then insist on every box. The service refuses an empty request.
    detail = TextAreaField("Details for the referring physician",
                           validators=[DataRequired(message="Say exactly what you need and why."), Length(max=8000)])


class InformationAnswerForm(FlaskForm):
    answer = TextAreaField("Your answer", validators=[Optional(), Length(max=8000)])
    documents = MultipleFileField("Reports (PDF)")
    scans = MultipleFileField("Scans (DICOM files or a .zip)")


class FollowUpForm(FlaskForm):
    question = TextAreaField("Your follow-up question", validators=[DataRequired(message="Write the question."), Length(max=8000)])


class FollowUpAnswerForm(FlaskForm):
    """The answer is signed as an addendum: the same attestation and password as any signature."""

    answer = TextAreaField("Your answer", validators=[DataRequired(message="Write the answer."), Length(max=8000)])
    attest = BooleanField(ATTESTATION, validators=[DataRequired(message="Confirm the attestation to sign.")])
    password = PasswordField("Your password", validators=[DataRequired(message="Enter your password to sign."),
                                                          Length(max=1024)])
