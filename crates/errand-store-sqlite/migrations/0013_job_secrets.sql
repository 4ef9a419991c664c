-- A job's secrets: a JSON object of name to value, NULL when it has none. Only the claim
-- answer and the script runner see the values; every other reader shows "***".
ALTER TABLE jobs ADD COLUMN secrets TEXT;
