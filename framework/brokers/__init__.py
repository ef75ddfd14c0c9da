"""Brokers behind one small protocol."""

from framework.brokers.base import Broker, BrokerEvent

__all__ = ["Broker", "BrokerEvent"]
