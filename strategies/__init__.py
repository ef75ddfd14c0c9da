"""Shipped strategy classes, one module each."""
