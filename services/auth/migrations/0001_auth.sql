-- The auth schema: users, signing keys, API keys.

CREATE TABLE users (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name             text NOT NULL UNIQUE,
  email            text NOT NULL DEFAULT '',
  -- argon2id, encoded with its own parameters and salt.
  password_hash    text NOT NULL,
  admin            boolean NOT NULL DEFAULT false,
  max_running_jobs integer NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Token signing keys. Exactly one is active (retired_at IS NULL); retired keys
-- stay in the JWKS until every token they signed has expired.
CREATE TABLE signing_keys (
  kid         text PRIMARY KEY,
  alg         text NOT NULL CHECK (alg IN ('RS256', 'ES256')),
  private_pem text NOT NULL,
  public_pem  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  retired_at  timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;

-- API keys: only a SHA-256 of the key is kept; the prefix finds it.
CREATE TABLE api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- The principal subject that owns the key (a user id, or an external id).
  owner        text NOT NULL,
  name         text NOT NULL DEFAULT '',
  prefix       text NOT NULL UNIQUE,
  hash         text NOT NULL,
  scopes       text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at   timestamptz,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_keys_owner ON api_keys (owner, created_at DESC, id DESC);
