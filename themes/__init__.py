"""The screen's stylesheets, shipped inside the wheel as the package `cockpit.themes` (see setup.py)."""
