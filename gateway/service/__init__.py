"""The one API front ends call (facade.py), the queue worker, and the collaborators they compose."""
