"""The staff-only, read-only JSON API (docs/api.md): one module per resource."""
