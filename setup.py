"""What pyproject.toml cannot say: the top-level themes/ and plans/ folders ship inside the wheel as the packages
cockpit.themes and cockpit.plans (read with importlib.resources, cockpit/core/resources.py), beside every
package under cockpit/. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

SHIPPED = {"cockpit.themes": "themes", "cockpit.plans": "plans"}

setup(
    packages=[*find_packages(include=["cockpit", "cockpit.*"]), *SHIPPED],
    package_dir=SHIPPED,
    package_data={"cockpit.themes": ["*.tcss", "*.toml"], "cockpit.plans": ["*.yaml"]},
)
