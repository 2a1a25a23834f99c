"""Backends run job bundles somewhere: a Slurm site over a transport, or this machine (local)."""
