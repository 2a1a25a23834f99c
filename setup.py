"""The one thing pyproject.toml cannot say: the top-level data folders (templates/, migrations/,
site_configs/, problems/) stay where the checkout has them, and the wheel carries them as the package
``gateway._data`` (found through gateway/resources.py). pyproject.toml's package-data says which files."""

from setuptools import find_packages, setup

DATA_FOLDERS = {
    f"gateway._data.{name}": name for name in ("templates", "migrations", "site_configs", "problems")
}

setup(
    packages=[
        *find_packages(include=["gateway", "gateway.*", "harness", "harness.*", "bot", "bot.*"]),
        *DATA_FOLDERS,
    ],
    package_dir=DATA_FOLDERS,
)
