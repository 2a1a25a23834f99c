"""Another gateway over HTTP: the remote CLI's client, saved tokens, waiting on a run."""
