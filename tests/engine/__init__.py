"""Tests of the live engine: order manager, reconciliation, kill and restart."""
