"""The relay's durable outbox (SQLite edge)."""
