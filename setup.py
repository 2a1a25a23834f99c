"""What pyproject.toml cannot say: the packages, found with every data folder as a (namespace) package of
its own, and the top-level data folders (templates/, migrations/, site_configs/, problems/), which stay
where the checkout has them, carried in the wheel as the package ``gateway._data`` (found through
gateway/core/resources.py). pyproject.toml's package-data says which files go."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

DATA_FOLDERS = ("templates", "migrations", "site_configs", "problems")
NOT_PACKAGES = ["*.__pycache__", "*.__pycache__.*"]


def data_packages(folder: str) -> list[str]:
    """The folder and each folder below it as a package under gateway._data (named by its path)."""
    below = sorted(p for p in Path(folder).rglob("*") if p.is_dir() and p.name != "__pycache__")
    return [f"gateway._data.{'.'.join(path.parts)}" for path in (Path(folder), *below)]


setup(
    packages=[
        *find_namespace_packages(
            include=["gateway", "gateway.*", "harness", "harness.*", "bot", "bot.*"], exclude=NOT_PACKAGES
        ),
        *(package for folder in DATA_FOLDERS for package in data_packages(folder)),
    ],
    package_dir={f"gateway._data.{folder}": folder for folder in DATA_FOLDERS},
)
