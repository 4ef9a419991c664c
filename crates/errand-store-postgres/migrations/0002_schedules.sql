-- Schedules: the definition as JSON (validated by errand before it is stored), and the
-- state the schedulers of every node share.
CREATE TABLE schedules (
    name           text PRIMARY KEY,
    spec           jsonb NOT NULL,
    paused         boolean NOT NULL DEFAULT false,
    next_fire_at   bigint,
    last_fire_at   bigint,
    last_job_id    uuid,
    buffered_slot  bigint,
    created_at     bigint NOT NULL,
    updated_at     bigint NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused;

-- One job per schedule slot, ever: the unique key that makes firing exactly-once however
-- many schedulers race.
CREATE TABLE schedule_slots (
    schedule  text NOT NULL,
    slot      bigint NOT NULL,
    job_id    uuid NOT NULL,
    PRIMARY KEY (schedule, slot)
);

ALTER TABLE jobs ADD COLUMN schedule_name text;
ALTER TABLE jobs ADD COLUMN schedule_slot bigint;
