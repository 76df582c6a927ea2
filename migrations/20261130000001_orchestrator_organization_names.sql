-- Orchestrator reads take the organization's name from the orchestrator's own row instead
-- of joining organizations for every row (the join was a quarter of a listing page's cost in
-- the database). Every writer copies the name from organizations, and an organization is
-- never renamed; rows written otherwise (imported from an earlier controller) are brought in
-- line here.
UPDATE orchestrator_instances o
   SET organization_name = g.name
  FROM organizations g
 WHERE g.organization_id = o.organization_id
   AND o.organization_name IS DISTINCT FROM g.name;
