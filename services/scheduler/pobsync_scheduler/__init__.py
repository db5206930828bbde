"""pobsync_scheduler: turns due cron schedules into queued jobs and reaps expired leases."""
