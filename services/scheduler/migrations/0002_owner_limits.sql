-- A user's own limit on jobs running at once (auth's User.max_running_jobs),
-- learnt when the user enqueues; NULL: the mesh default.
ALTER TABLE owners ADD COLUMN max_running integer CHECK (max_running IS NULL OR max_running > 0);
