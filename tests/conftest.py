"""pytest setup shared by every test directory (helpers live in tests/support.py)."""
