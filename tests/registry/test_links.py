"""Registry links: each process serving HTTP opens its share of a link's sessions."""

from __future__ import annotations

import pytest

from regshield.registry.links import PoolShare


@pytest.mark.parametrize(("pool_size", "processes", "main", "child"), [
    (2, 1, 2, None), (4, 2, 2, 2), (5, 2, 3, 2), (8, 3, 4, 2), (3, 3, 1, 1),
])
def test_the_sessions_of_a_link_are_divided_among_the_http_processes(
        pool_size: int, processes: int, main: int, child: int | None) -> None:
    assert PoolShare(processes, main=True).size(pool_size) == main
    if child is not None:
        assert PoolShare(processes, main=False).size(pool_size) == child
        # Together the processes hold the link's sessions, no more.
        assert main + (processes - 1) * child == pool_size


def test_every_process_has_a_session_when_the_pool_is_smaller_than_their_number() -> None:
    assert PoolShare(4, main=True).size(2) == 1
    assert PoolShare(4, main=False).size(2) == 1
    assert PoolShare().size(2) == 2  # one process (tools, the default): the whole pool
