-- Exactly the rights the worker and the tools use on idemq's own tables.
-- Included by roles.sql once the tables exist (run it, not this file: it sets
-- the variables). Each statement names the SQL that needs it; docs/security.md
-- has the long form. Tables this file does not name keep the default
-- privileges roles.sql set, so a table a newer migration adds is not taken
-- away from the worker before this file learns about it.

-- An install migrated before it had roles: the migrator becomes the owner.
SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'migrator')
FROM pg_tables WHERE schemaname = :'schema' AND tableowner <> :'migrator' \gexec

SELECT format('REVOKE ALL ON %I.%I FROM %I, %I', :'schema', name, :'runtime', :'operator')
FROM unnest(ARRAY['schema_migrations', 'inbox', 'handling_started', 'outbox', 'outbox_published', 'outbox_lease'])
    AS name \gexec

-- The runtime role: `<worker> run` and `<worker> relay`.
-- Startup: the schema version check reads the migrations table.
GRANT SELECT ON :"schema".schema_migrations TO :"runtime";
-- The claim (INSERT ... ON CONFLICT DO NOTHING) and the fingerprint of a
-- duplicate (SELECT).
GRANT SELECT, INSERT ON :"schema".inbox TO :"runtime";
\if :runtime_prunes_inbox
-- The in-worker pruner: DELETE of a batch of aged rows chosen with
-- SELECT ... FOR UPDATE SKIP LOCKED, which needs UPDATE on one column.
GRANT DELETE, UPDATE (received_at) ON :"schema".inbox TO :"runtime";
\endif
-- The crash-loop guard: a mark per started delivery (INSERT ... ON CONFLICT
-- DO UPDATE of its count), cleared when the handling ends (DELETE).
GRANT SELECT, INSERT, DELETE, UPDATE (deliveries, last_started_at) ON :"schema".handling_started TO :"runtime";
-- Handlers stage rows (INSERT); the relay reads them (SELECT), records a
-- failed publish (UPDATE) and deletes a confirmed one (DELETE).
GRANT SELECT, INSERT, DELETE, UPDATE (attempts, last_error, next_attempt_at, parked_at)
    ON :"schema".outbox TO :"runtime";
-- The relay moves confirmed rows here (INSERT ... RETURNING staged_at) and
-- prunes them after the retention window (DELETE, chosen FOR UPDATE).
GRANT SELECT, INSERT, DELETE, UPDATE (published_at) ON :"schema".outbox_published TO :"runtime";
-- The relay's lease: taken, renewed and given up (UPDATE), held FOR SHARE
-- while it records confirms.
GRANT SELECT, UPDATE (owner, epoch, expires_at) ON :"schema".outbox_lease TO :"runtime";

-- The operator role: idemqctl trace, inbox prune and outbox list|retry|purge.
-- Reading everything is how an operator finds out what happened.
GRANT SELECT ON :"schema".schema_migrations, :"schema".inbox, :"schema".handling_started, :"schema".outbox,
    :"schema".outbox_published, :"schema".outbox_lease TO :"operator";
-- inbox prune: aged inbox rows (DELETE, chosen FOR UPDATE) and stale marks.
GRANT DELETE, UPDATE (received_at) ON :"schema".inbox TO :"operator";
GRANT DELETE ON :"schema".handling_started TO :"operator";
-- outbox retry (UPDATE) and purge (DELETE) of parked rows.
GRANT DELETE, UPDATE (attempts, next_attempt_at, parked_at) ON :"schema".outbox TO :"operator";
