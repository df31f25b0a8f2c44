"""Reports: compile summaries, verification, costs."""
