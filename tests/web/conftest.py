from __future__ import annotations

import pytest
from django.utils import timezone

from tests.support.webdata import seed_demo


@pytest.fixture
def demo(db):
    """One host in every state (tests.support.webdata.seed_demo)."""
    return seed_demo(timezone.now())
