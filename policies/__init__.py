"""The policies shipped with hubguard: ``default.toml``, ``strict.toml`` and the JSON Schema ``schema.json``."""
