"""``rectilinear_grids``: zarr's rectilinear option on inside our code only, nested and
across threads, and the caller's own setting left as it was."""

from __future__ import annotations

import threading

import zarr

from virtualizarr.manifests.metadata import rectilinear_grids


def option() -> bool:
    return bool(zarr.config.get("array.rectilinear_chunks"))


def test_nested_scopes_keep_the_option_on_until_the_outermost_ends() -> None:
    assert option() is False
    with rectilinear_grids():
        with rectilinear_grids():
            assert option() is True
        assert option() is True
    assert option() is False


def test_the_callers_setting_is_restored() -> None:
    with zarr.config.set({"array.rectilinear_chunks": True}):
        with rectilinear_grids():
            assert option() is True
        assert option() is True
    assert option() is False


def test_overlapping_scopes_in_two_threads() -> None:
    """The first scope ending must not switch the option off under the second, nor may
    the second, ending last, leave it on."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with rectilinear_grids():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with rectilinear_grids():
            second_in.set()
            first_out.wait(5)
            seen.append(option())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [True]
    assert option() is False
