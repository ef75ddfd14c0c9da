-- TimescaleDB when the extension is installed and preloaded: ticks and bars become hypertables with
-- compression and retention policies. Otherwise they stay plain tables with BRIN time indexes. The
-- queries rata runs are the same either way. Detected here, at migration time.

DO $$
DECLARE
    timescale boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
        AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%';
BEGIN
    IF timescale THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('ticks', 'time', chunk_time_interval => interval '1 day', migrate_data => true);
        PERFORM create_hypertable('bars', 'open_time', chunk_time_interval => interval '7 days', migrate_data => true);
        ALTER TABLE ticks SET (timescaledb.compress, timescaledb.compress_segmentby = 'instrument_id');
        ALTER TABLE bars SET (timescaledb.compress, timescaledb.compress_segmentby = 'instrument_id, timeframe');
        PERFORM add_compression_policy('ticks', interval '2 days');
        PERFORM add_compression_policy('bars', interval '30 days');
        PERFORM add_retention_policy('ticks', interval '90 days');
        RAISE NOTICE 'rata: TimescaleDB hypertables with compression and retention';
    ELSE
        CREATE INDEX ticks_time_brin ON ticks USING brin (time);
        CREATE INDEX bars_open_time_brin ON bars USING brin (open_time);
        RAISE NOTICE 'rata: plain PostgreSQL tables with BRIN time indexes';
    END IF;
END
$$;
