"""Edge: the verifying stream processor (faust app) and its Postgres store."""
