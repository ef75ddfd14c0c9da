"""Market data feeds behind one small protocol."""

from framework.feeds.base import Feed, FeedHealth
from framework.feeds.replay import ReplayFeed
from framework.feeds.synthetic import SyntheticFeed

__all__ = ["Feed", "FeedHealth", "ReplayFeed", "SyntheticFeed"]
