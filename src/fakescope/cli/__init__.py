"""Thin command-line interface: each module parses arguments, calls the library and sets the exit code."""
