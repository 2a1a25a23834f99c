"""The kernel submission gateway (see docs/architecture.md)."""

import warnings

# asyncssh still imports cryptography's DSA classes, and cryptography warns about them at import, five
# blocks on every command: nothing a user of the gateway can act on (the gateway never offers DSA keys).
warnings.filterwarnings("ignore", message="DSA is deprecated", category=UserWarning, module=r"asyncssh\.")
