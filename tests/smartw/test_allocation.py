"""Safety invariant 1 (ARCHITECTURE.md) for the sharing function, by property-based tests."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.smartw.allocation import PowerRequest, allocate

power = st.floats(min_value=0, max_value=500_000, allow_nan=False, allow_infinity=False)
requests = st.lists(
    st.builds(PowerRequest, connector_id=st.integers(1, 50), connector_limit_w=power, demand_w=power),
    max_size=8, unique_by=lambda r: r.connector_id,
)


@given(station=power, asked=requests)
def test_sum_never_exceeds_station_limit_nor_any_connector_limit(station, asked) -> None:
    result = allocate(station, asked)
    assert sum(result.values()) <= station + 1e-6
    for request in asked:
        assert 0 <= result[request.connector_id] <= min(request.connector_limit_w, request.demand_w) + 1e-6


@given(station=power, asked=requests)
def test_no_power_is_left_unused_while_someone_wants_more(station, asked) -> None:
    result = allocate(station, asked)
    wanted = sum(min(r.connector_limit_w, r.demand_w) for r in asked)
    assert abs(sum(result.values()) - min(station, wanted)) <= 1e-3


def test_equal_share_when_both_want_more_than_half() -> None:
    result = allocate(100_000, [PowerRequest(1, 150_000, 150_000), PowerRequest(2, 150_000, 80_000)])
    assert result == {1: 50_000, 2: 50_000}


def test_small_demand_leaves_the_rest_to_the_other() -> None:
    result = allocate(100_000, [PowerRequest(1, 150_000, 150_000), PowerRequest(2, 22_000, 11_000)])
    assert result == {1: 89_000, 2: 11_000}
