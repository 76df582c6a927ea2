-- The independent orchestrators, for the overview's count of pending messages that the
-- controller still acts on: pending messages less those of independent orchestrators reads
-- the pending messages and this index instead of joining every orchestrator row (~36 ms of
-- the overview at 100,000). Only an independence toggle changes `is_independent`, so
-- heartbeat updates stay heap-only.
CREATE INDEX orchestrator_instances_independent_idx ON orchestrator_instances (orchestrator_id)
    WHERE is_independent;
