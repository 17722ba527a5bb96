"""Hostile remote-code repositories for the sandbox tests, kept as data (see ``cases.py``)."""
