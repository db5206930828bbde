"""The staff-only, read-only dashboard (docs/dashboard.md): one module per page."""
