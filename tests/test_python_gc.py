"""The cyclic garbage collector is paused while a scan, a mark or a plan runs, and only then."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from regsweep.demo import generate_demo
from regsweep.gc import mark as mark_module
from regsweep.gc import plan as plan_module
from regsweep.python_gc import collector_paused
from regsweep.scan import scanner
from regsweep.storage.filesystem import FilesystemStore


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@collector_paused
def _state(inner: bool = False) -> list[bool]:
    seen = [gc.isenabled()]
    if inner:
        seen += _state()
        seen.append(gc.isenabled())  # the inner call left it paused
    return seen


def test_paused_during_the_call_and_on_again_after() -> None:
    assert _state() == [False]
    assert gc.isenabled()


def test_a_nested_call_leaves_it_to_the_outermost() -> None:
    assert _state(inner=True) == [False, False, False]
    assert gc.isenabled()


def test_on_again_after_an_error() -> None:
    @collector_paused
    def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fails()
    assert gc.isenabled()


def test_a_program_that_turned_it_off_keeps_it_off() -> None:
    gc.disable()
    assert _state() == [False]
    assert not gc.isenabled()


def test_scan_mark_and_plan_run_with_it_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, bool] = {}

    def spy(module: object, name: str) -> None:
        real = getattr(module, name)

        def run(*args: object, **kwargs: object) -> object:
            seen[name] = gc.isenabled()
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, run)

    spy(scanner._Scan, "run")
    spy(mark_module, "_repositories")
    spy(plan_module, "_in_link_order")
    store = FilesystemStore(tmp_path)
    generate_demo(store, now=datetime.now(UTC))
    snap = scanner.scan(store)
    marked = mark_module.mark(snap)
    plan_module.make_plan(snap, marked, plan_module.GcSettings(), datetime.now(UTC))
    assert seen == {"run": False, "_repositories": False, "_in_link_order": False}
    assert gc.isenabled()
