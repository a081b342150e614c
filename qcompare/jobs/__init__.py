"""Jobs: the durable job table, the runner that spawns one worker process per job, the worker."""
