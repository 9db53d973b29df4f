-- The jobs schema: jobs, their append-only event history. Generalises the
-- PathOn seed's jobs table (state machine, retry lineage, error log, progress).

CREATE TABLE jobs (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner                  text NOT NULL,
  model                  text NOT NULL,
  dataset_url            text NOT NULL,
  hyperparameters        jsonb NOT NULL DEFAULT '{}',
  priority               integer NOT NULL DEFAULT 0,
  max_attempts           integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  labels                 jsonb NOT NULL DEFAULT '{}',
  state                  text NOT NULL CHECK (state IN ('PENDING', 'QUEUED', 'INITIALIZING',
                           'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
  attempt                integer NOT NULL DEFAULT 0,
  retry_of               uuid REFERENCES jobs (id),
  retry_count            integer NOT NULL DEFAULT 0,
  error_log              text NOT NULL DEFAULT '',
  error_kind             smallint NOT NULL DEFAULT 0,
  -- Serialized trainmesh.v1 Progress / Cost / Artifact messages.
  progress               bytea,
  cost                   bytea,
  artifact               bytea,
  agent_id               text NOT NULL DEFAULT '',
  allow_shared_pool      boolean NOT NULL DEFAULT false,
  queue_timeout_seconds  bigint NOT NULL,
  resume_from_checkpoint boolean NOT NULL DEFAULT false,
  cancel_requested       boolean NOT NULL DEFAULT false,
  request_id             text,
  last_event_seq         bigint NOT NULL DEFAULT 0,
  last_report_seq        bigint NOT NULL DEFAULT 0,
  created_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
  started_at             timestamptz,
  completed_at           timestamptz,
  failed_at              timestamptz,
  cancelled_at           timestamptz,
  UNIQUE (owner, request_id)
);

-- ListJobs: one owner's jobs, newest first, keyset-paginated on (created_at, id).
CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC, id DESC);
-- Work in flight (reapers, dashboards): only non-terminal rows are indexed.
CREATE INDEX jobs_active_state ON jobs (state)
  WHERE state IN ('PENDING', 'QUEUED', 'INITIALIZING', 'RUNNING');
CREATE INDEX jobs_retry_of ON jobs (retry_of) WHERE retry_of IS NOT NULL;
CREATE INDEX jobs_labels ON jobs USING gin (labels jsonb_path_ops);

-- Every state change and progress report, numbered 1, 2, 3… per job without
-- gaps. WatchJob replays it and follows it live.
CREATE TABLE job_events (
  job_id         uuid NOT NULL REFERENCES jobs (id),
  seq            bigint NOT NULL,
  type           text NOT NULL,
  state          text NOT NULL,
  previous_state text NOT NULL DEFAULT '',
  message        text NOT NULL DEFAULT '',
  progress       bytea,
  attempt        integer NOT NULL DEFAULT 0,
  terminal       boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (job_id, seq)
);

-- Append-only, enforced by the database.
CREATE FUNCTION job_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'job_events is append-only';
END;
$$;
CREATE TRIGGER job_events_no_update BEFORE UPDATE OR DELETE ON job_events
  FOR EACH ROW EXECUTE FUNCTION job_events_append_only();
