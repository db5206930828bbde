"""Legacy YAML configuration: the file format, its reader and validator, its writer.

Only the migration helpers (import-configs / export-configs) use this package; the
running service reads its configuration from SQL and never from these files. The
format is documented in docs/legacy-yaml.md.
"""

from __future__ import annotations
