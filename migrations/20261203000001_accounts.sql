-- Accounts and tenancy: practices (the tenants), their users, sign-in state
-- and the audit trail.
--
-- Isolation is enforced twice. The store scopes every query in code, and
-- PostgreSQL row-level security checks every row against the scope the store
-- sets per transaction:
--   app.practice_id  the practice the current request acts within
--   app.platform     'on' while a platform admin acts across practices
-- The application connects as `gyri_app`, which owns nothing, is no superuser
-- and has NOBYPASSRLS. Migrations run as the owner. A query issued by gyri_app
-- without either setting sees no tenant row at all.

DO $$
BEGIN
    CREATE ROLE gyri_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION
    -- Roles are cluster-wide: another database of this cluster (or a
    -- concurrent migration) may have created it already.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO gyri_app;

CREATE FUNCTION app_practice_id() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.practice_id', true), '')::uuid $$;

CREATE FUNCTION app_is_platform() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('app.platform', true), '') = 'on' $$;

CREATE TYPE practice_status AS ENUM ('active', 'suspended');
CREATE TYPE disease_programme AS ENUM ('ms', 'dementia');
CREATE TYPE user_role AS ENUM ('platform_admin', 'practice_admin', 'neurologist', 'technician');
CREATE TYPE user_status AS ENUM ('invited', 'active', 'deactivated');

-- A practice is a tenant: a clinic with its own users and patients.
CREATE TABLE practices (
    id               uuid PRIMARY KEY,
    name             text NOT NULL
        CONSTRAINT practices_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 200),
    status           practice_status NOT NULL DEFAULT 'active',
    -- Defaults for new patients: the disease programme and how many months
    -- pass between follow-up scans (drives storage tiering later).
    programme        disease_programme NOT NULL DEFAULT 'ms',
    follow_up_months integer NOT NULL DEFAULT 12
        CONSTRAINT practices_follow_up_range CHECK (follow_up_months BETWEEN 1 AND 120),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX practices_name_key ON practices (lower(name));

-- Users. Platform admins belong to no practice; everyone else to exactly one.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    practice_id   uuid REFERENCES practices (id),
    email         text NOT NULL
        CONSTRAINT users_email_format CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    display_name  text NOT NULL
        CONSTRAINT users_display_name_length CHECK (char_length(btrim(display_name)) BETWEEN 1 AND 200),
    role          user_role NOT NULL,
    status        user_status NOT NULL DEFAULT 'invited',
    -- argon2id PHC string; NULL until the invitation is accepted.
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_practice_matches_role CHECK ((role = 'platform_admin') = (practice_id IS NULL))
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_practice_idx ON users (practice_id);

-- An invitation lets its holder set the invited user's password once.
-- Only a SHA-256 of the token is stored.
CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    practice_id uuid REFERENCES practices (id),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL CONSTRAINT invitations_token_key UNIQUE,
    invited_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz
);
CREATE INDEX invitations_user_idx ON invitations (user_id);

-- Browser sessions. The cookie holds a random token; only its SHA-256 is here.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    practice_id  uuid REFERENCES practices (id),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL CONSTRAINT sessions_token_key UNIQUE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ip           inet,
    user_agent   text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Personal API keys for scripts. Shown once; only a SHA-256 is kept.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    practice_id  uuid REFERENCES practices (id),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL
        CONSTRAINT api_keys_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 100),
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- The audit trail: append-only. Rows are never updated or deleted, not even
-- by the owner (the trigger below), and gyri_app may only insert and read.
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    practice_id   uuid REFERENCES practices (id),
    actor_user_id uuid REFERENCES users (id),
    actor_email   text,
    action        text NOT NULL,
    target_type   text,
    target_id     uuid,
    ip            inet,
    details       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_practice_at_idx ON audit_events (practice_id, at DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Sign-in attempts, for rate limiting per account and per address. Not
-- tenant data: the practice is unknown until the password is checked.
CREATE TABLE sign_in_attempts (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    email     text NOT NULL,
    ip        inet,
    succeeded boolean NOT NULL
);
CREATE INDEX sign_in_attempts_email_idx ON sign_in_attempts (email, at);
CREATE INDEX sign_in_attempts_ip_idx ON sign_in_attempts (ip, at);

-- Row-level security on every tenant-owned table.
ALTER TABLE practices ENABLE ROW LEVEL SECURITY;
CREATE POLICY practices_scope ON practices
    USING (id = app_practice_id() OR app_is_platform())
    WITH CHECK (app_is_platform() OR id = app_practice_id());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_scope ON users
    USING (practice_id = app_practice_id() OR app_is_platform())
    WITH CHECK (practice_id = app_practice_id() OR app_is_platform());

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
CREATE POLICY invitations_scope ON invitations
    USING (practice_id = app_practice_id() OR app_is_platform())
    WITH CHECK (practice_id = app_practice_id() OR app_is_platform());

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY sessions_scope ON sessions
    USING (practice_id = app_practice_id() OR app_is_platform())
    WITH CHECK (practice_id = app_practice_id() OR app_is_platform());

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_keys_scope ON api_keys
    USING (practice_id = app_practice_id() OR app_is_platform())
    WITH CHECK (practice_id = app_practice_id() OR app_is_platform());

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_events_read ON audit_events FOR SELECT
    USING (practice_id = app_practice_id() OR app_is_platform());
-- Events outside any practice (a failed sign-in for an unknown address) may be
-- appended from any scope.
CREATE POLICY audit_events_append ON audit_events FOR INSERT
    WITH CHECK (practice_id IS NULL OR practice_id = app_practice_id() OR app_is_platform());

-- Before a request is authenticated its practice is unknown. These narrow
-- SECURITY DEFINER functions are the only way gyri_app reads across
-- practices, and each answers one question about one credential.

CREATE FUNCTION auth_user_by_email(p_email text)
    RETURNS TABLE (user_id uuid, practice_id uuid, role user_role, status user_status,
                   password_hash text, practice_active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT u.id, u.practice_id, u.role, u.status, u.password_hash,
               coalesce(p.status = 'active', true)
        FROM users u LEFT JOIN practices p ON p.id = u.practice_id
        WHERE lower(u.email) = lower(p_email)
    $$;

-- A live session: not expired, user active, practice (if any) active.
CREATE FUNCTION auth_session(p_token_hash bytea)
    RETURNS TABLE (session_id uuid, user_id uuid, practice_id uuid, role user_role,
                   email text, display_name text, csrf_token text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT s.id, u.id, u.practice_id, u.role, u.email, u.display_name, s.csrf_token
        FROM sessions s
        JOIN users u ON u.id = s.user_id
        LEFT JOIN practices p ON p.id = u.practice_id
        WHERE s.token_hash = p_token_hash
          AND s.expires_at > now()
          AND u.status = 'active'
          AND coalesce(p.status = 'active', true)
    $$;

-- A live API key: not revoked, user active, practice (if any) active.
CREATE FUNCTION auth_api_key(p_key_hash bytea)
    RETURNS TABLE (key_id uuid, user_id uuid, practice_id uuid, role user_role,
                   email text, display_name text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT k.id, u.id, u.practice_id, u.role, u.email, u.display_name
        FROM api_keys k
        JOIN users u ON u.id = k.user_id
        LEFT JOIN practices p ON p.id = u.practice_id
        WHERE k.key_hash = p_key_hash
          AND k.revoked_at IS NULL
          AND u.status = 'active'
          AND coalesce(p.status = 'active', true)
    $$;

-- An open invitation, to show who it is for and where it belongs.
CREATE FUNCTION auth_invitation(p_token_hash bytea)
    RETURNS TABLE (invitation_id uuid, user_id uuid, practice_id uuid, email text,
                   display_name text, practice_name text, expires_at timestamptz,
                   accepted_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT i.id, u.id, u.practice_id, u.email, u.display_name, p.name,
               i.expires_at, i.accepted_at
        FROM invitations i
        JOIN users u ON u.id = i.user_id
        LEFT JOIN practices p ON p.id = u.practice_id
        WHERE i.token_hash = p_token_hash
    $$;

REVOKE ALL ON FUNCTION auth_user_by_email(text), auth_session(bytea), auth_api_key(bytea),
    auth_invitation(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_user_by_email(text), auth_session(bytea), auth_api_key(bytea),
    auth_invitation(bytea) TO gyri_app;

GRANT SELECT, INSERT, UPDATE ON practices, users, invitations, api_keys TO gyri_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions TO gyri_app;
GRANT SELECT, INSERT ON audit_events TO gyri_app;
GRANT SELECT, INSERT, DELETE ON sign_in_attempts TO gyri_app;
