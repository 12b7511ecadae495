"""The delivery relay process: ingress, durable outbox, delivery loop, status."""
