"""Market data feeds behind one small protocol."""

from framework.feeds.base import BatchFeed, Feed, FeedHealth
from framework.feeds.replay import ReplayFeed
from framework.feeds.synthetic import SyntheticFeed

__all__ = ["BatchFeed", "Feed", "FeedHealth", "ReplayFeed", "SyntheticFeed"]
