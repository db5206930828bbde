"""pobsync_web: the web process (admin, staff-only JSON API, staff-only dashboard)."""
