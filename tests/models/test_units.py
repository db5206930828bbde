from __future__ import annotations

import pytest

from pobsync_models.units import format_bytes


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (int(23.4 * 1024**3), "23.4 GiB"),
        (3 * 1024**5, "3072.0 TiB"),
    ],
)
def test_it_shows_bytes_in_binary_units(n, shown):
    assert format_bytes(n) == shown
