"""The live trading engine: strategy instances, sizing, order management and reconciliation."""
