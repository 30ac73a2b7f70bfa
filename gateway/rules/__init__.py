"""Pure rules: what an ack does, where a filing goes, the lifecycle table, retry,
outages, breakers and pacing. Nothing here does I/O; time is handed in."""
