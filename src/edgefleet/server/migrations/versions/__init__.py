"""Revisions, oldest first; file names start with the revision id."""
