"""Every domain's models, imported once so that `Base.metadata` knows all tables.

The app factory, the Alembic environment and the backup check import this module; core (`db`) does not,
since it knows no domain.
"""
from review_portal import jobs  # noqa: F401  (the background-job table)
from review_portal.api import models as api  # noqa: F401
from review_portal.assignment import models as assignment  # noqa: F401
from review_portal.audit import models as audit  # noqa: F401
from review_portal.auth import models as auth  # noqa: F401
from review_portal.cases import models as cases  # noqa: F401
from review_portal.db import Base
from review_portal.imaging import models as imaging  # noqa: F401
from review_portal.letters import models as letters  # noqa: F401
from review_portal.messaging import models as messaging  # noqa: F401
from review_portal.notifications import models as notifications  # noqa: F401
from review_portal.opinions import models as opinions  # noqa: F401
from review_portal.outcomes import models as outcomes  # noqa: F401

metadata = Base.metadata
