"""The one base of every error the cockpit raises on purpose, carrying the exit code a face returns for it.

Exit codes: 0 done, 1 the action failed (or was refused), 2 usage or plan error. A face maps a CockpitError to
its exit code in one place (the CLI: `cockpit.cli.main.main`); anything else that escapes is a bug.
"""

from __future__ import annotations

from typing import ClassVar

from cockpit.core.redact import redact_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CockpitError(Exception):
    """An error with a message meant for the person at the keyboard."""

    exit_code: ClassVar[int] = EXIT_FAILED

    def report(self, prog: str) -> list[str]:
        """The lines a face prints for it (`prog`: the command that failed, e.g. `cockpit sync`)."""
        return [f"{prog}: {redact_text(str(self))}"]


class UsageError(CockpitError):
    """The command line asks for something that cannot be done as given (exit 2)."""

    exit_code = EXIT_USAGE
