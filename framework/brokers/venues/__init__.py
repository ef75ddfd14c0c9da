"""Venue profiles for `CcxtBroker`: what ccxt's unified API does not settle for placing orders."""

from framework.brokers.venues.base import BrokerVenue, broker_venue_for
from framework.venues import merged_config

__all__ = ["BrokerVenue", "broker_venue_for", "merged_config"]
