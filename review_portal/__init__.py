"""The second-opinion review portal. `create_app` builds it; docs/architecture.md shows its layers."""
from review_portal.app import ConfigurationError, create_app

__all__ = ["ConfigurationError", "create_app"]
