"""Fakes of external systems for tests: local servers that speak the real wire formats."""
