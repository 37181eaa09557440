-- idemq's Postgres roles: a migrator that owns the schema, a runtime role for
-- the worker and its in-worker relay, an operator role for the tools. All
-- three are NOLOGIN groups: no password lives in this file. Log-in users are
-- the operator's to create (docs/operations.md, "Database roles"), e.g.
--
--   CREATE ROLE payments_worker LOGIN IN ROLE idemq_runtime;  \password payments_worker
--   CREATE ROLE payments_deploy LOGIN IN ROLE idemq_migrator; \password payments_deploy
--   ALTER ROLE payments_deploy SET role = 'idemq_migrator';   -- tables it creates are the migrator's
--
-- Run as a superuser (or the database's owner with CREATEROLE) on the
-- application's database, before the first `<worker> migrate` and again after
-- every one (it is idempotent; once the tables exist it applies grants.sql):
--
--   psql -d DB -v schema=idemq -v migrator=idemq_migrator -v runtime=idemq_runtime \
--        -v operator=idemq_operator -f deploy/postgres/roles.sql
--
-- Every variable is optional (the defaults are the names above), and so is
-- -v runtime_prunes_inbox=on: set it only when the worker prunes the inbox
-- itself (IDEMQ_INBOX_PRUNE_INTERVAL > 0). docs/security.md explains each right.
\set ON_ERROR_STOP on
-- "schema already exists, skipping" on every run after the first is no news.
SET client_min_messages = warning;
\if :{?schema}
\else
\set schema idemq
\endif
\if :{?migrator}
\else
\set migrator idemq_migrator
\endif
\if :{?runtime}
\else
\set runtime idemq_runtime
\endif
\if :{?operator}
\else
\set operator idemq_operator
\endif
\if :{?runtime_prunes_inbox}
\else
\set runtime_prunes_inbox off
\endif
SELECT current_database() AS database \gset

SELECT format('CREATE ROLE %I NOLOGIN', name)
FROM unnest(ARRAY[:'migrator', :'runtime', :'operator']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec

GRANT CONNECT ON DATABASE :"database" TO :"migrator", :"runtime", :"operator";
-- `migrate` runs CREATE SCHEMA IF NOT EXISTS, and Postgres checks CREATE on
-- the database before it looks whether the schema exists; an application's
-- migrations create their own schemas too (the payments example's does).
GRANT CREATE ON DATABASE :"database" TO :"migrator";

CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"migrator";
ALTER SCHEMA :"schema" OWNER TO :"migrator";
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
-- USAGE only: neither role may create anything in the schema.
GRANT USAGE ON SCHEMA :"schema" TO :"runtime", :"operator";

-- A table a later framework migration creates must not stop the worker
-- between that migrate and the next run of this file, which narrows the
-- grants to exactly what the worker runs (grants.sql). Never TRUNCATE,
-- REFERENCES or TRIGGER, never DDL.
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
    GRANT SELECT ON TABLES TO :"operator";

SELECT to_regclass(format('%I.schema_migrations', :'schema')) IS NOT NULL AS migrated \gset
\if :migrated
\ir grants.sql
\endif
