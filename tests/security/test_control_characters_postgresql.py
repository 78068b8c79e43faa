"""The doors where a NUL used to be a 500 on PostgreSQL (it refuses NUL in text), run on PostgreSQL whatever
database the rest of the run uses: the login form, referral fields, messages, the audit search, QIDO."""
import pytest

from tests.security.test_control_characters import (  # noqa: F401  (collected here, on PostgreSQL)
    test_login_form_with_nul_is_a_readable_400,
    test_messages_and_audit_search,
    test_qido_search_and_path_values,
    test_referral_fields_with_control_characters_create_nothing,
)


@pytest.fixture
def app(pg_app):
    return pg_app
