"""The cockpit's themes (dark, light, high contrast) from themes/*.toml, and the settings file that remembers the
chosen one between runs.

A theme file holds the fields of `textual.theme.Theme` (plus `label`, how the theme is named to people). The
settings live in `$XDG_CONFIG_HOME/cockpit/settings.json` (`~/.config/cockpit/settings.json` by default); a
settings file that cannot be read is ignored (the defaults apply), one that cannot be written is not fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from textual.app import App
from textual.theme import Theme

from cockpit.core import resources

THEMES = resources.theme_folder()
ORDER = ("cockpit-dark", "cockpit-light", "cockpit-high-contrast")  # the `t` key goes round in this order
DEFAULT = ORDER[0]


def load_themes(folder: Path = THEMES) -> dict[str, tuple[str, Theme]]:
    """name -> (label, Theme) for every themes/*.toml, in ORDER first."""
    found: dict[str, tuple[str, Theme]] = {}
    for path in sorted(folder.glob("*.toml")):
        doc: dict[str, Any] = tomllib.loads(path.read_text())
        label = str(doc.pop("label", doc["name"]))
        found[doc["name"]] = (label, Theme(**doc))
    return dict(sorted(found.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER)))


def register(app: App[Any]) -> None:
    for _label, theme in load_themes().values():
        app.register_theme(theme)


def next_theme(current: str) -> str:
    """The theme after `current` in ORDER (the first one after any other theme)."""
    return ORDER[(ORDER.index(current) + 1) % len(ORDER)] if current in ORDER else DEFAULT


def label(name: str) -> str:
    return load_themes().get(name, (name, None))[0]


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cockpit"


@dataclass
class Settings:
    """What the cockpit remembers for the person running it."""

    theme: str = DEFAULT  # a theme's name (themes/*.toml or any Textual theme)

    @classmethod
    def path(cls) -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> Settings:
        try:
            doc = json.loads(cls.path().read_text())
        except (OSError, ValueError):
            return cls()
        theme = doc.get("theme") if isinstance(doc, dict) else None
        return cls(theme=theme if isinstance(theme, str) and theme else DEFAULT)

    def remember(self, theme: str) -> bool:
        """Keep `theme` for the next run; False (and nothing else) when the file cannot be written."""
        if theme == self.theme and self.path().exists():
            return True
        self.theme = theme
        path = self.path()
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
            tmp.replace(path)
            return True
        return False
