"""Brokers behind one small protocol."""

from framework.brokers.base import Broker, BrokerEvent
from framework.brokers.errors import DuplicateOrder, RateLimited, UnknownOrder
from framework.brokers.paper import PaperBroker

__all__ = ["Broker", "BrokerEvent", "DuplicateOrder", "PaperBroker", "RateLimited", "UnknownOrder"]
