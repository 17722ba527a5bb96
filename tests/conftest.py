"""Shared pytest configuration; area fixtures live in tests/_fixtures_*.py modules."""
