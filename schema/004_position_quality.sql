-- Data-quality flag bits of every stored fix (hw_fix.quality, HW_Q_* in ingest/fix.h): 0 = good.
-- A constant default adds the column without rewriting the partitions (PostgreSQL 11+), and
-- partitions created later by hw_ensure_partitions copy it through LIKE positions.
ALTER TABLE positions ADD COLUMN quality smallint NOT NULL DEFAULT 0;
