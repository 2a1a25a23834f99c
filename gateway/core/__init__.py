"""What every layer shares: errors, run states, modes, checks of names, formatting, the command seam."""
