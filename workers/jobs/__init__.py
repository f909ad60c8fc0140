"""The jobs service (RQ worker with scheduler) and the job framework: every job leaves a
JobRecord row with its log and result (workers.jobs.runner). Callers use workers.jobs.api."""
