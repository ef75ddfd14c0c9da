"""Real-time ingestion: validate feed events, aggregate bars, write them to PostgreSQL without loss."""

from framework.ingest.aggregate import DEFAULT_TIMEFRAMES, BarAggregator
from framework.ingest.latency import LatencyHistogram, LatencySnapshot, LatencySummary
from framework.ingest.link import DATABASE_DOWN, DatabaseLink, PoolFactory
from framework.ingest.messages import REASONS, InvalidEvent, event_from_mapping
from framework.ingest.normalise import Normaliser
from framework.ingest.pipeline import IngestPipeline, IngestStats
from framework.ingest.spool import Spool, SpooledBatch, SpoolFullError
from framework.ingest.writer import BatchWriter, CommittedTicks, WriterStats

__all__ = [
    "DATABASE_DOWN",
    "DEFAULT_TIMEFRAMES",
    "REASONS",
    "BarAggregator",
    "BatchWriter",
    "CommittedTicks",
    "DatabaseLink",
    "IngestPipeline",
    "IngestStats",
    "InvalidEvent",
    "LatencyHistogram",
    "LatencySnapshot",
    "LatencySummary",
    "Normaliser",
    "PoolFactory",
    "Spool",
    "SpoolFullError",
    "SpooledBatch",
    "WriterStats",
    "event_from_mapping",
]
