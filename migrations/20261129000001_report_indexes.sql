-- Indexes for the dashboard's reads of a large fleet.

-- An organization's orchestrators in id order: a listing's page walks this index and stops
-- at the page's end instead of reading and sorting every match. Same leading column as the
-- index it replaces, so no query loses its index; neither column changes on a heartbeat, so
-- heartbeat updates stay heap-only.
DROP INDEX orchestrator_instances_organization_idx;
CREATE INDEX orchestrator_instances_organization_idx
    ON orchestrator_instances (organization_id, orchestrator_id);

-- The cost report of one organization reads every usage row of the range. With the
-- organization index alone each row is a heap visit (usage rows of one organization are
-- scattered over the table as reports arrive); carrying the summed columns in the index lets
-- the report read the index alone (usage rows are never updated, so the visibility map stays
-- set once autovacuum has passed).
DROP INDEX usage_records_org_idx;
CREATE INDEX usage_records_org_idx ON usage_records (organization_id, reported_at)
    INCLUDE (orchestrator_id, model, requests, input_tokens, output_tokens, cost);

-- Vacuum after 2 % new rows instead of 20 %: the rows added since the last vacuum are the
-- ones the index alone cannot answer for.
ALTER TABLE usage_records SET (autovacuum_vacuum_insert_scale_factor = 0.02);
