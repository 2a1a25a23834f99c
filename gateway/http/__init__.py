"""The HTTP front ends: the JSON API and the web pages."""
