"""The hubguard version, recorded in saved configs and in every report."""

__version__ = "0.1.0"
