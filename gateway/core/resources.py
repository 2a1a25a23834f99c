"""Where the gateway's own files are: job templates, migrations, the example sites and problems, the
harness, the site check's probe task. Every user of those files asks here.

In a checkout (the source tree the gateway was imported from holds pyproject.toml, templates/ and
migrations/) they are the checkout's top-level folders, as the dev stack, the tests and ``make demo`` use
them. Installed from a wheel they are package data found through ``importlib.resources``: setup.py maps
the top-level folders into ``gateway/_data/`` when the wheel is built, so an installed gateway never reads
a source tree. Site files are the exception: the example sites (alpha, beta) describe the dev stack, so
outside a checkout the default sites folder is a per-user one (:func:`user_sites_dir`), where
``gateway sites init`` writes a site discovered on the login node.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from gateway.core.errors import ConfigError

_SOURCE_ROOT = Path(__file__).resolve().parents[2]
# what a checkout has at its top level (an installed package's folder, site-packages, has none of these)
_CHECKOUT_MARKS = ("pyproject.toml", "templates", "migrations")


def checkout_root() -> Path | None:
    """The source tree the gateway runs from, or None when it runs from an installed package."""
    if all((_SOURCE_ROOT / mark).exists() for mark in _CHECKOUT_MARKS):
        return _SOURCE_ROOT
    return None


def _package_dir(package: str, *parts: str) -> Path:
    """A folder of package data as a real path (pip installs packages unzipped; a zipped one is refused)."""
    found = files(package).joinpath(*parts)
    if not isinstance(found, Path) or not found.is_dir():
        where = "/".join((package, *parts))
        raise ConfigError(f"the installed kernel-gateway has no folder {where}: reinstall it with pip")
    return found


def _data_dir(name: str) -> Path:
    root = checkout_root()
    return root / name if root is not None else _package_dir("gateway", "_data", name)


def templates_dir() -> Path:
    """The job-script Jinja templates (base.sbatch.j2, local.sh.j2, fallback.sh.j2, sites/)."""
    return _data_dir("templates")


def migrations_dir() -> Path:
    """The yoyo migrations of the database schema."""
    return _data_dir("migrations")


def problems_dir() -> Path:
    """The example tasks (vectoradd, softmax): the default tasks folder."""
    return _data_dir("problems")


def example_sites_dir() -> Path:
    """The example site files: the dev stack's two clusters, and its routing policy."""
    return _data_dir("site_configs")


def user_sites_dir() -> Path:
    """The per-user sites folder: ``$XDG_CONFIG_HOME/kernel-gateway/sites`` (``~/.config/...`` when unset).
    It may not exist yet."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "kernel-gateway" / "sites"


def default_sites_dir() -> Path:
    """The sites folder when GATEWAY_SITES_DIR is unset: the checkout's example sites in a checkout (the
    dev stack's), else the per-user folder, so the dev stack's alpha and beta never become a login node's
    sites."""
    root = checkout_root()
    return root / "site_configs" if root is not None else user_sites_dir()


def harness_dir() -> Path:
    """The harness package's source folder, which every job bundle carries to the node."""
    return _package_dir("harness")


def probe_task_dir() -> Path:
    """The site check's tiny task (gateway/probe/), shipped inside the gateway package."""
    return _package_dir("gateway", "probe")
