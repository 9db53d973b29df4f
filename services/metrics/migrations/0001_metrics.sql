-- The metrics schema: training telemetry of every job.

-- Per job: the owner (from the first job token that reported), the highest
-- attempt seen (reports of older attempts are refused), sequence counters and
-- the running cost.
CREATE TABLE jobs (
  job_id         uuid PRIMARY KEY,
  owner          text NOT NULL,
  attempt        integer NOT NULL,
  last_point_seq bigint NOT NULL DEFAULT 0,
  last_log_seq   bigint NOT NULL DEFAULT 0,
  device_type    text NOT NULL DEFAULT '',
  device_seconds double precision NOT NULL DEFAULT 0,
  cost           double precision NOT NULL DEFAULT 0,
  currency       text NOT NULL DEFAULT 'USD',
  updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Batches already stored: a retried batch is acknowledged, not stored twice.
CREATE TABLE batches (
  job_id     uuid NOT NULL,
  attempt    integer NOT NULL,
  batch_seq  bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (job_id, attempt, batch_seq)
);

-- One row per value. (job_id, seq) serves resumable streams; the series
-- index serves step-range queries and downsampling.
CREATE TABLE points (
  job_id    uuid NOT NULL,
  seq       bigint NOT NULL,
  name      text NOT NULL,
  run       text NOT NULL DEFAULT '',
  step      bigint NOT NULL,
  value     double precision NOT NULL,
  wall_time timestamptz NOT NULL,
  attempt   integer NOT NULL,
  PRIMARY KEY (job_id, seq)
);
CREATE INDEX points_series ON points (job_id, name, run, step);

CREATE TABLE logs (
  job_id  uuid NOT NULL,
  seq     bigint NOT NULL,
  attempt integer NOT NULL,
  time    timestamptz NOT NULL,
  stream  smallint NOT NULL,
  text    text NOT NULL,
  PRIMARY KEY (job_id, seq)
);

-- Last/min/max per series, kept current at ingest for cheap job cards (and the
-- step extent and count queries start from). min and max ignore NaN and
-- infinities; last is the latest value as sent.
CREATE TABLE summaries (
  job_id    uuid NOT NULL,
  name      text NOT NULL,
  run       text NOT NULL DEFAULT '',
  last       double precision NOT NULL,
  last_step  bigint NOT NULL,
  first_step bigint NOT NULL,
  min        double precision,
  max       double precision,
  count     bigint NOT NULL,
  PRIMARY KEY (job_id, name, run)
);

-- Charts declared by the training code.
CREATE TABLE charts (
  job_id  uuid NOT NULL,
  title   text NOT NULL,
  metrics text[] NOT NULL,
  type    text NOT NULL,
  PRIMARY KEY (job_id, title)
);

-- The cost of each attempt, written by its final batch.
CREATE TABLE cost_records (
  job_id         uuid NOT NULL,
  attempt        integer NOT NULL,
  device_type    text NOT NULL,
  device_seconds double precision NOT NULL,
  amount         double precision NOT NULL,
  currency       text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (job_id, attempt)
);
