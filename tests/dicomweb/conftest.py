from tests.browser.conftest import live_server  # noqa: F401  (the same live server the browser tests use)
