-- The organizations' day totals are kept by a trigger on usage_records instead of by the
-- statement that records usage: every writer counts — a state replica still running the
-- code from before the totals during a rolling deploy, a copy with COPY or pgloader — and
-- totals saturate at the largest bigint instead of failing the insert (counters come from
-- orchestrators; one failed batch would fail again on every retry).
CREATE OR REPLACE FUNCTION usage_organization_days_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- In key order, so statements of several writers lock shared day rows in the same
    -- order (no deadlock).
    INSERT INTO usage_organization_days AS d
        (organization_id, day, requests, input_tokens, output_tokens, cost)
    SELECT organization_id, date_trunc('day', reported_at, 'UTC'),
           LEAST(sum(requests), 9223372036854775807)::int8,
           LEAST(sum(input_tokens), 9223372036854775807)::int8,
           LEAST(sum(output_tokens), 9223372036854775807)::int8,
           sum(cost)
      FROM added
     GROUP BY 1, 2
     ORDER BY 1, 2
    ON CONFLICT (organization_id, day) DO UPDATE SET
        requests = LEAST(d.requests::numeric + excluded.requests, 9223372036854775807)::int8,
        input_tokens = LEAST(d.input_tokens::numeric + excluded.input_tokens,
                             9223372036854775807)::int8,
        output_tokens = LEAST(d.output_tokens::numeric + excluded.output_tokens,
                              9223372036854775807)::int8,
        cost = d.cost + excluded.cost;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER usage_organization_days_add
    AFTER INSERT ON usage_records
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION usage_organization_days_add();

-- Counted again from the rows, under the trigger's lock (CREATE TRIGGER waited for every
-- insert in progress, and new ones wait for this transaction): rows recorded since the
-- totals were first filled by writers that did not keep them are counted too.
DELETE FROM usage_organization_days;
INSERT INTO usage_organization_days
    (organization_id, day, requests, input_tokens, output_tokens, cost)
SELECT organization_id, date_trunc('day', reported_at, 'UTC'),
       LEAST(sum(requests), 9223372036854775807)::int8,
       LEAST(sum(input_tokens), 9223372036854775807)::int8,
       LEAST(sum(output_tokens), 9223372036854775807)::int8,
       sum(cost)
  FROM usage_records
 GROUP BY 1, 2;
