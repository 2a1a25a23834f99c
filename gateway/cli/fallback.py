"""`gateway fallback ...`: set up the fallback backends (docs/fallbacks.md).

`gateway fallback github-keys` makes the key pair that keeps job bundles out of GitHub's view: the public
key goes into the routing policy (the github backend's ``bundle_public_key``), the private key into the
workflow repository's Actions secret GATEWAY_BUNDLE_KEY. The private key is written to a new file of
mode 0600 and never printed; the commands to paste are.
"""

from __future__ import annotations

import base64
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from gateway.cli.common import console, fail, shown_path

app = typer.Typer(help="Fallback backends (Modal, GitHub Actions): their keys.", no_args_is_help=True)
SECRET_NAME = "GATEWAY_BUNDLE_KEY"  # noqa: S105 (the name of a secret, not one)


def make_key_pair() -> tuple[str, str]:
    """(public key, private key), each base64 of 32 bytes (X25519, as PyNaCl's SealedBox uses them)."""
    from nacl.public import PrivateKey

    private = PrivateKey.generate()
    return base64.b64encode(bytes(private.public_key)).decode(), base64.b64encode(bytes(private)).decode()


def write_private(path: Path, private: str) -> None:
    """A new file (never an existing one: O_EXCL, which also refuses a link), mode 0600 from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private + "\n")


@app.command("github-keys")
def github_keys(
    private_key_file: Annotated[
        Path, typer.Option("--private-key-file", "-o", help="where the private key goes (a new file, 0600)")
    ] = Path("gateway-bundle-key.secret"),
    repo: Annotated[
        str, typer.Option("--repo", help="the repository holding gateway-run.yml (for the commands shown)")
    ] = "OWNER/REPO",
) -> None:
    """Make the key pair that seals job bundles for the GitHub Actions fallback: print the public key
    for the routing policy and the command that stores the private key as the workflow's secret."""
    try:
        public, private = make_key_pair()
    except ImportError:
        fail("PyNaCl is missing: pip install 'kernel-gateway[github]'", 1)
    try:
        write_private(private_key_file, private)
    except FileExistsError:
        fail(f"{shown_path(private_key_file)} exists: give another --private-key-file (nothing written)")
    except OSError as exc:
        fail(f"cannot write {shown_path(private_key_file)}: {exc.strerror}", 1)
    key_file, where = shlex.quote(str(private_key_file)), shlex.quote(repo)
    lines = [
        "1. In the routing policy (policy/routing.yaml in the sites folder), under the github backend:",
        "",
        f"     bundle_public_key: {public}",
        "",
        f"2. The private key is in {shown_path(private_key_file)} (mode 0600). Store it as the Actions",
        f"   secret {SECRET_NAME} of the workflow's repository, then remove the file:",
        "",
        f"     gh secret set {SECRET_NAME} --repo {where} < {key_file}",
        f"     rm {key_file}",
        "",
        "3. The workflow opens bundles with PyNaCl: the runners' python3 needs it (pip install pynacl), or",
        "   name a Python that has it:",
        "",
        f"     gh variable set GATEWAY_PYTHON --repo {where} --body /path/to/python",
        "",
        "A new pair replaces the old one: change the policy and the secret together (runs dispatched",
        "before the change fail, saying the bundle cannot be opened).",
    ]
    console.print(Text("\n".join(lines)), highlight=False, soft_wrap=True)
