"""The model registry: validated artifacts, content-addressed storage and TUF metadata."""
