"""pobsync_runner: claims queued jobs and runs the rsync snapshot engine."""
