"""Configurator users with a role (the groups of migration 0009), logged in to a test client;
`viewer` and `operator` are also fixtures of tests/webapp/conftest.py."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.test import Client

VIEWER, OPERATOR = "viewer", "operator"


def user_with_role(role: str, username: str | None = None) -> User:
    user = User.objects.create_user(username or role, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)  # fresh: no cached permissions


def client_as(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
