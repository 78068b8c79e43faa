from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from review_portal.api.models import SCOPES
from review_portal.api.services import LIFETIMES_DAYS


class NewTokenForm(FlaskForm):
    name = StringField("What will use it", validators=[DataRequired(message="Name the system that will use it."),
                                                       Length(max=100)])
    scope = SelectField("Access", choices=list(SCOPES.items()), default="read")
    days = SelectField("Expires after", choices=[(str(d), f"{d} days") for d in LIFETIMES_DAYS], default="90")
    # A new credential is a privilege change: the password again, so an unattended session cannot mint one.
    password = PasswordField("Your password", validators=[DataRequired(), Length(max=1024)])


class RevokeTokenForm(FlaskForm):
    """Carries only the CSRF token."""
