"""The traffic driver interface: the controller knows this, not nginx."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from cockpit.core.errors import CockpitError


class TrafficError(CockpitError, RuntimeError):
    """Applying a split failed; the previous configuration is still live. The message is the tool's own."""


@dataclass(frozen=True)
class SplitStatus:
    """What one load balancer has live: the green share in percent (None when unknown)."""

    balancer: str
    green_percent: float | None
    detail: str = ""


class TrafficDriver(ABC):
    """Moves the green share. Blocking calls: the controller runs them in a thread."""

    @abstractmethod
    def apply(self, green_percent: float) -> list[SplitStatus]:
        """Make `green_percent` live on every balancer, or raise TrafficError leaving the old split live."""

    @abstractmethod
    def live(self) -> list[SplitStatus]:
        """What each balancer has live now (read from the world, not from memory)."""


def live_percent(statuses: list[SplitStatus]) -> float | None:
    """One figure for the screen: the share when all balancers agree, else None."""
    values = {s.green_percent for s in statuses}
    return values.pop() if len(values) == 1 else None
