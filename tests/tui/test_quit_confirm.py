"""``q`` in the TUI of ``facility run`` asks before it stops the monitoring service.

``facility run`` hands the TUI the service's stop (``facility.launch.run_with_tui``); the
dialog keeps it running unless confirmed. ``facility tui`` hands none: quitting only closes
the viewer and the service goes on. The real service (simulator, engine, store) runs on its
loop thread; what the test checks is whether it still commits cycles.
"""

from __future__ import annotations

import asyncio

from facility.service.socket import current_login
from tests.fixtures.service import wait_for
from tests.fixtures.wait import DEADLINE_S, pilot_until
from tui.app import make_app
from tui.screens.base import DataScreen
from tui.screens.quit_confirm import QuitConfirm


async def _until(pilot, cond, timeout: float = DEADLINE_S) -> None:
    await pilot_until(pilot, cond, timeout=timeout)


async def _still_cycling(run) -> bool:
    seen = run.cycles()
    return bool(await asyncio.to_thread(wait_for, lambda: run.cycles() > seen))


async def test_viewer_quits_at_once_and_the_run_tui_asks_first(start_service):
    run = start_service()
    cfg = run.cfg

    viewer = make_app(cfg, cfg.db_path, login=current_login())  # facility tui
    async with viewer.run_test(size=(100, 30)) as pilot:
        await _until(pilot, lambda: isinstance(viewer.screen, DataScreen)
                     and viewer.screen.drawn is not None)
        await pilot.press("q")
        await _until(pilot, lambda: viewer.return_code is not None)
        assert not any(isinstance(s, QuitConfirm) for s in viewer.screen_stack)
    assert await _still_cycling(run)  # closing the viewer left the service alone

    app = make_app(cfg, cfg.db_path, login=current_login(), stop_service=run.stop)
    async with app.run_test(size=(100, 30)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, DataScreen)
                     and app.screen.drawn is not None)
        await pilot.press("q")
        await _until(pilot, lambda: isinstance(app.screen, QuitConfirm))
        assert "stops the monitoring service" in str(app.screen.query_one("#quit-text").render())
        assert app.focused is app.screen.query_one("#keep")  # Enter alone never stops it
        await pilot.press("n")  # cancel
        await _until(pilot, lambda: isinstance(app.screen, DataScreen))
        assert app.is_running and app.return_code is None
        assert await _still_cycling(run)
        await pilot.press("q")
        await _until(pilot, lambda: isinstance(app.screen, QuitConfirm))
        await pilot.press("y")  # confirm
        await _until(pilot, lambda: app.return_code is not None, timeout=120)
    assert run.stopped and not run.thread.is_alive()  # the service stopped with the TUI
