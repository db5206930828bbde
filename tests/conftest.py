from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def staff(db):
    """alice: a staff user who may see everything."""
    return get_user_model().objects.create_user(
        "alice", "alice@example.com", "alice-password-1", is_staff=True
    )


@pytest.fixture
def user(db):
    """bob: logged-in but not staff; must see nothing."""
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def user_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def anon_client() -> Client:
    return Client()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1 (one per test session) with its own keys."""
    from tests.support.sshd import running_sshd

    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
