"""Market data feeds behind one small protocol."""

from framework.feeds.base import Feed, FeedHealth

__all__ = ["Feed", "FeedHealth"]
