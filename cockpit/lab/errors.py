"""The lab's one error: something it needs is missing or failed; the message says what and how to fix it."""

from cockpit.core.errors import CockpitError


class LabError(CockpitError, RuntimeError):
    pass
