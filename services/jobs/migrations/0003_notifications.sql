-- Each user's inbox: one row each time one of their jobs started, completed,
-- failed, was cancelled or was requeued, inserted by the statement that makes
-- the change (JobStore::Update), so it commits or rolls back with it.
CREATE TABLE notifications (
  id         bigserial PRIMARY KEY,
  owner      text NOT NULL,
  job_id     uuid NOT NULL REFERENCES jobs (id),
  kind       text NOT NULL CHECK (kind IN ('STARTED', 'COMPLETED', 'FAILED', 'CANCELLED',
                                           'REQUEUED')),
  model      text NOT NULL,
  message    text NOT NULL DEFAULT '',
  attempt    integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  read_at    timestamptz
);

-- The inbox, newest first (keyset on id).
CREATE INDEX notifications_owner ON notifications (owner, id DESC);
-- Unread counts and "unread only" lists touch only the unread rows.
CREATE INDEX notifications_unread ON notifications (owner, id DESC) WHERE read_at IS NULL;
