"""The files the cockpit ships beside its code: the screen's stylesheets (top-level `themes/`) and the plan
templates (`plans/`), found with importlib.resources wherever cockpit is installed (a checkout, an editable
install, a wheel). The wheel carries them as the packages `cockpit.themes` and `cockpit.plans` (setup.py)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def theme(name: str = "cockpit.tcss") -> Path:
    """A stylesheet of the screen."""
    return _path("cockpit.themes", name)


def theme_folder() -> Path:
    """Where the screen's stylesheet and its themes (*.toml) are."""
    return Path(str(files("cockpit.themes")))


def plan_template(name: str) -> Path:
    """A plan shipped with cockpit (`lab.yaml`, `licitacoes.yaml`)."""
    return _path("cockpit.plans", name)


def _path(package: str, name: str) -> Path:
    # installed as files (never zipped): the Traversable is a real path that Textual and the YAML loader open
    return Path(str(files(package) / name))
