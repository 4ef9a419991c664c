-- The slot ledger is pruned by age across every schedule, oldest first.
CREATE INDEX schedule_slots_by_slot ON schedule_slots (slot);
