"""Thin command-line layer: build settings, call library code, map errors to exit codes."""
