"""A job's mechanics, from a rendered script to a verified result; never the store."""
