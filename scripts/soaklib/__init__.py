"""The soak test's parts (scripts/soak.py is the entry point; docs/soak.md)."""
