-- Requests for the scheduler (enqueue, cancel), written in the transaction of
-- the change that causes them and delivered in order by the relay, so a crash
-- between commit and call loses nothing.
CREATE TABLE outbox (
  id         bigserial PRIMARY KEY,
  kind       text NOT NULL,
  payload    bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
