"""Edge: the operator's side of the relay's HTTP interface (its status port)."""
