-- Schedules: the definition as JSON (validated by errand before it is stored), and the
-- state the schedulers of every node share.
CREATE TABLE schedules (
    name           TEXT PRIMARY KEY,
    spec           TEXT NOT NULL,
    paused         INTEGER NOT NULL DEFAULT 0,
    next_fire_at   INTEGER,
    last_fire_at   INTEGER,
    last_job_id    BLOB,
    buffered_slot  INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;

-- One job per schedule slot, ever: the unique key that makes firing exactly-once however
-- many schedulers race. Kept apart from `jobs` so ordinary enqueues pay nothing for it.
CREATE TABLE schedule_slots (
    schedule  TEXT NOT NULL,
    slot      INTEGER NOT NULL,
    job_id    BLOB NOT NULL,
    PRIMARY KEY (schedule, slot)
) WITHOUT ROWID;

ALTER TABLE jobs ADD COLUMN schedule_name TEXT;
ALTER TABLE jobs ADD COLUMN schedule_slot INTEGER;
