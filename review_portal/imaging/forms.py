from flask_wtf import FlaskForm
from wtforms import FloatField, IntegerField, MultipleFileField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional


class AddScansForm(FlaskForm):
    scans = MultipleFileField("Scans (DICOM files, a .zip of a study, or a folder with a DICOMDIR)")


class KeyImageForm(FlaskForm):
    series_id = IntegerField(validators=[InputRequired()])
    slice_index = IntegerField(validators=[InputRequired(), NumberRange(min=0)])
    window_center = FloatField(validators=[Optional(), NumberRange(min=-100000, max=100000)])
    window_width = FloatField(validators=[Optional(), NumberRange(min=0.001, max=200000)])
    caption = StringField("Caption", validators=[Optional(), Length(max=300)])
    # The image itself, when the viewer knows it: the key image is anchored to it, not to the slice index.
    sop_instance_uid = StringField(validators=[Optional(), Length(max=64)])
    frame = IntegerField(validators=[Optional(), NumberRange(min=0)])


class UnmarkKeyImageForm(FlaskForm):
    """A button that changes state: carries only the CSRF token."""


__all__ = ["AddScansForm", "KeyImageForm", "UnmarkKeyImageForm", "DataRequired"]
