"""What the admin API asks of the engine, and the ledger-backed implementation.

The server only talks to a :class:`Controller`. :class:`LedgerController` keeps the ledger
as the truth: a pause, resume or cancel is stored there first (so it survives a restart),
then handed to the engine through ``on_change`` so the running campaign reacts at once.

Transitions (:func:`next_control`): pause and resume move between running and paused (asking
for the state a campaign is already in is accepted and changes nothing); cancel is final, so
pausing or resuming a cancelled campaign is a :class:`ControlConflict`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from smsblast.ledger import AsyncLedger, CampaignInfo, Control

__all__ = [
    "ACTIONS",
    "CampaignStatus",
    "ControlConflict",
    "Controller",
    "LedgerController",
    "UnknownCampaign",
    "campaign_entry",
    "next_control",
    "unopened_entry",
]

CampaignStatus = dict[str, Any]
"""What the engine reports about one campaign it runs (JSON-serialisable)."""

#: The admin API's actions and the control each one asks for.
ACTIONS: Final[dict[str, Control]] = {
    "pause": Control.PAUSED,
    "resume": Control.RUNNING,
    "cancel": Control.CANCELLED,
}


class UnknownCampaign(LookupError):
    """No campaign of that name in the ledger."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no campaign {name}")
        self.name = name


class ControlConflict(Exception):
    """The control asked for is not possible from the campaign's current one."""


def next_control(name: str, current: Control, requested: Control) -> Control:
    """The control a campaign moves to when ``requested`` is asked while it is ``current``.

    Raises:
        ControlConflict: the campaign is cancelled and ``requested`` is not cancel.
    """
    if current is Control.CANCELLED and requested is not Control.CANCELLED:
        verb = "paused" if requested is Control.PAUSED else "resumed"
        raise ControlConflict(f"campaign {name} is cancelled: it cannot be {verb}")
    return requested


def campaign_entry(info: CampaignInfo, status: CampaignStatus | None) -> dict[str, Any]:
    """One campaign as the API shows it: ``name``, ``control``, ``created_at`` (ISO 8601,
    UTC), ``pruned_at`` (when ``smsblast prune`` deleted its rows, else ``None``) and
    ``engine``, what the engine reports about it (``None`` when this process does not run
    it)."""
    pruned = info.pruned_at
    return {
        "name": info.name,
        "control": info.control,
        "created_at": datetime.fromtimestamp(info.created_at, UTC).isoformat(),
        "pruned_at": None if pruned is None else datetime.fromtimestamp(pruned, UTC).isoformat(),
        "engine": status,
    }


def unopened_entry(name: str, control: str | None, status: CampaignStatus) -> dict[str, Any]:
    """A campaign the engine runs that is not in the ledger yet (waiting for its start or
    its Kafka group): the control asked for it so far (``running`` when none was), and no
    ``created_at`` (``None``) until it opens."""
    return {
        "name": name,
        "control": control or Control.RUNNING.value,
        "created_at": None,
        "pruned_at": None,
        "engine": status,
    }


class Controller(Protocol):
    """The engine as the admin API sees it."""

    async def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign (see :func:`campaign_entry`), oldest first."""
        ...

    async def inspect(self, name: str) -> dict[str, Any] | None:
        """One campaign in detail, or ``None`` when there is no such campaign."""
        ...

    async def set_control(self, name: str, control: Control) -> str:
        """Ask for ``control``; returns the campaign's control afterwards.

        Raises:
            UnknownCampaign: no such campaign.
            ControlConflict: the transition is not allowed (see :func:`next_control`).
        """
        ...

    def ready(self) -> bool:
        """Whether the engine is ready to do its work (for ``/readyz``)."""
        ...


class LedgerController:
    """A :class:`Controller` over the engine's ledger.

    ``on_change(name, control)`` is called after the control is stored, on the event loop;
    it must not block (the engine records the wish and acts on it in its own tasks). If it
    raises, the control stays stored (the engine applies it on its next start) and the API
    answers 500.
    ``status()`` returns, per campaign name, what the engine reports about the campaigns it
    runs. ``ready()`` says whether the engine is ready (bound, consuming).
    """

    def __init__(
        self,
        ledger: AsyncLedger,
        on_change: Callable[[str, Control], None],
        status: Callable[[], dict[str, CampaignStatus]],
        *,
        ready: Callable[[], bool],
    ) -> None:
        self._ledger = ledger
        self._on_change = on_change
        self._status = status
        self._ready = ready
        self._lock = asyncio.Lock()  # one read-check-write at a time

    async def campaigns(self) -> list[dict[str, Any]]:
        """The ledger's campaigns, oldest first, then those this engine runs and has not
        opened yet, by name."""
        infos = await self._ledger.campaigns()
        status = self._status()
        entries = [campaign_entry(info, status.get(info.name)) for info in infos]
        opened = {info.name for info in infos}
        for name in sorted(status.keys() - opened):
            entries.append(unopened_entry(name, await self._ledger.control(name), status[name]))
        return entries

    async def inspect(self, name: str) -> dict[str, Any] | None:
        info = await self._ledger.campaign_info(name)
        status = self._status().get(name)
        if info is not None:
            entry = campaign_entry(info, status)
            entry["counts"] = await self._ledger.counts(name)
        elif status is not None:
            entry = unopened_entry(name, await self._ledger.control(name), status)
            entry["counts"] = {}  # nothing is recorded before a campaign opens
        else:
            return None
        return entry

    async def set_control(self, name: str, control: Control) -> str:
        """A campaign this engine runs but has not opened yet (waiting for its start) can be
        controlled too: the ledger keeps the control and opens the campaign with it."""
        async with self._lock:
            info = await self._ledger.campaign_info(name)
            # not opened yet: the control asked for it before it opens, if any
            current = info.control if info is not None else await self._ledger.control(name)
            runs_it = name in self._status()
            if current is None and not runs_it:
                raise UnknownCampaign(name)
            if info is not None and info.pruned_at is not None:
                raise ControlConflict(
                    f"campaign {name} was pruned from the ledger (smsblast prune): it never "
                    "runs again, so there is nothing to control"
                )
            new = next_control(name, Control(current) if current else Control.RUNNING, control)
            await self._ledger.set_control(name, new.value, runs_it)
            self._on_change(name, new)  # under the lock: the engine hears changes in order
        return new.value

    def ready(self) -> bool:
        return self._ready()
