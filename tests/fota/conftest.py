"""Fixtures shared by the update tests: a manufacturer (root, signer) and an update key, made once
per module."""

from __future__ import annotations

import pytest

from tests.fota.test_update_job import Maker, _maker
from workers.fota.keys import UpdateKey, new_update_key


@pytest.fixture(scope="module")
def maker() -> Maker:
    return _maker()


@pytest.fixture(scope="module")
def update_key() -> UpdateKey:
    return new_update_key()
