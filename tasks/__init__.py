"""Prefect tasks: reusable units of work over the core (`dunning`) and the blocks."""
