"""Venue profiles for `CcxtFeed`: how each exchange's public trades are watched and backfilled."""

from framework.feeds.venues.base import CcxtVenue, TradeCursor, venue_for

__all__ = ["CcxtVenue", "TradeCursor", "venue_for"]
