"""The services driver interface: start, stop and ask after the app servers of one side."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from cockpit.core.errors import CockpitError


class ServiceError(CockpitError, RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceStatus:
    unit: str
    running: bool
    detail: str = ""
    host: str = ""  # the ssh host it runs on; empty: this machine


class ServiceDriver(ABC):
    @abstractmethod
    def start(self, units: list[str]) -> list[ServiceStatus]: ...

    @abstractmethod
    def stop(self, units: list[str]) -> list[ServiceStatus]: ...

    @abstractmethod
    def status(self, units: list[str]) -> list[ServiceStatus]: ...
