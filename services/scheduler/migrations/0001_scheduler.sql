-- The scheduler schema: the queue, leases, agents, and the outbox of status
-- reports for the jobs service.

-- One row per job ever enqueued. state: QUEUED (waiting), RUNNING (claimed,
-- leased to an agent), DONE (finished, failed or cancelled).
CREATE TABLE queue (
  job_id                uuid PRIMARY KEY,
  owner                 text NOT NULL,
  model                 text NOT NULL,
  priority              integer NOT NULL,
  max_attempts          integer NOT NULL,
  allow_shared_pool     boolean NOT NULL,
  queue_timeout_seconds bigint NOT NULL,
  -- The job as the jobs service stored it (serialized trainmesh.v1.Job).
  job                   bytea NOT NULL,
  state                 text NOT NULL CHECK (state IN ('QUEUED', 'RUNNING', 'DONE')),
  -- Claims so far: the fencing token of job tokens.
  attempt               integer NOT NULL DEFAULT 0,
  -- Infrastructure failures so far (lease expiries, infra FailJob); a job
  -- fails for good at max_attempts.
  failures              integer NOT NULL DEFAULT 0,
  agent_id              uuid,
  lease_expires_at      timestamptz,
  cancel_requested      boolean NOT NULL DEFAULT false,
  -- Where the next attempt starts from (serialized trainmesh.v1.Artifact).
  checkpoint            bytea,
  progress              bytea,
  -- RUNNING has been reported for the current attempt.
  running_reported      boolean NOT NULL DEFAULT false,
  progress_reported_at  timestamptz,
  enqueued_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
  queued_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
  claimed_at            timestamptz,
  finished_at           timestamptz,
  outcome               text
);
-- The claim: highest priority, then oldest, among waiting jobs.
CREATE INDEX queue_ready ON queue (priority DESC, queued_at) WHERE state = 'QUEUED';
CREATE INDEX queue_leases ON queue (lease_expires_at) WHERE state = 'RUNNING';
CREATE INDEX queue_owner_running ON queue (owner) WHERE state = 'RUNNING';

-- Jobs running per owner, for concurrency limits and fair share. The row lock
-- serialises claims of one owner's jobs, so a limit is never overshot.
CREATE TABLE owners (
  owner   text PRIMARY KEY,
  running integer NOT NULL DEFAULT 0 CHECK (running >= 0)
);

CREATE TABLE agents (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner                text NOT NULL,
  name                 text NOT NULL,
  -- Serialized trainmesh.v1.DeviceCapabilities.
  capabilities         bytea NOT NULL,
  shared_pool          boolean NOT NULL DEFAULT false,
  allow_scripts        boolean NOT NULL DEFAULT true,
  allow_shared_scripts boolean NOT NULL DEFAULT false,
  max_concurrent_jobs  integer NOT NULL DEFAULT 1,
  version              text NOT NULL DEFAULT '',
  draining             boolean NOT NULL DEFAULT false,
  registered_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  last_seen_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX agents_owner ON agents (owner);

-- Status reports for the jobs service, written in the transaction of the
-- change they report and delivered in order by the relay.
CREATE TABLE outbox (
  id         bigserial PRIMARY KEY,
  kind       text NOT NULL,
  payload    bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
