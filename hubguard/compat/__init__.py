"""Compatibility layers that let remote code written for other libraries run against hubguard."""
