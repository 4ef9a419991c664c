-- Schedules whose slots' jobs may be written ahead of the slot (`overlap: allow`: firing
-- does not depend on the previous run), so a burst of slots is written before it comes.
-- Set from the definition whenever it is stored.
ALTER TABLE schedules ADD COLUMN fires_ahead boolean NOT NULL DEFAULT false;
UPDATE schedules SET fires_ahead = (spec->>'overlap' = 'allow');
-- The soonest slot of each kind: at its slot, or ahead of it.
CREATE INDEX schedules_due_ahead ON schedules (fires_ahead, next_fire_at) WHERE NOT paused;
