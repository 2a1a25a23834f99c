"""Site YAML files written into a test's own sites folder, pointing at the running dev stack."""

from __future__ import annotations

from pathlib import Path

from gateway.config.settings import REPO_ROOT


def dev_site_text(name: str, dev_dir: Path) -> str:
    """site_configs/<name>.yaml with its key paths made absolute (the copy lives elsewhere)."""
    text = (REPO_ROOT / "site_configs" / f"{name}.yaml").read_text()
    return text.replace("../.dev/ssh/", f"{dev_dir / 'ssh'}/")


def write_site(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path
