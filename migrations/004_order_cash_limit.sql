-- A buy may cap what it spends (fees included) instead of, or as well as, its quantity: the engine
-- sizes all-in entries this way because it cannot know the fill price when it decides.
ALTER TABLE orders ADD COLUMN cash_limit numeric CHECK (cash_limit > 0);
