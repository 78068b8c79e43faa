from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

from review_portal.auth.models import ROLE_LABELS, SPECIALTY_LABELS


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(message="Type the code."), Length(max=32)])


class EnrolForm(CodeForm):
    """Setting up an authenticator; moving to a new one also needs the password and the old app's current code."""

    password = PasswordField("Your password", validators=[Optional(), Length(max=1024)])
    current_code = StringField("Code from your current authenticator app", validators=[Optional(), Length(max=32)])


class LogoutForm(FlaskForm):
    """Carries only the CSRF token: logging out is a state change."""


class ConfirmForm(FlaskForm):
    """Carries only the CSRF token, for buttons that change something."""


class NewPasswordForm(FlaskForm):
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("new_password", message="The two passwords differ.")])


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])


class PasswordOnlyForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired(), Length(max=1024)])


class ForgotPasswordForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Email(check_deliverability=False), Length(max=255)])


class InviteForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Email(check_deliverability=False), Length(max=255)])
    name = StringField("Full name", validators=[DataRequired(), Length(max=200)])
    credentials = StringField("Credentials (e.g. MD, FRCR)", validators=[Optional(), Length(max=100)])
    role = SelectField("Role", choices=[(str(k), v) for k, v in ROLE_LABELS.items()], validators=[DataRequired()])
    specialty = SelectField("Specialty (reviewers)", choices=[("", "—")] + [(str(k), v) for k, v in SPECIALTY_LABELS.items()],
                            validators=[Optional()])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[(str(k), v) for k, v in ROLE_LABELS.items()], validators=[DataRequired()])
    specialty = SelectField("Specialty (reviewers)", choices=[("", "—")] + [(str(k), v) for k, v in SPECIALTY_LABELS.items()],
                            validators=[Optional()])
