"""Typed protocol errors.

``RemoteProtocolError`` and its subclasses describe bytes a peer sent us;
``LocalProtocolError`` describes something our own code tried to do that the
protocol forbids (an h11 habit). Each remote error carries the command_status a
session answers with, so the caller never has to guess.
"""

from __future__ import annotations

from smsblast.smpp.constants import Status


class SmppError(Exception):
    """Base of every error raised by the SMPP core."""


class LocalProtocolError(SmppError):
    """Our side tried something illegal (wrong state, oversize field, ...)."""


class RemoteProtocolError(SmppError):
    """The peer sent something malformed or illegal."""

    status: int = Status.RSYSERR

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class FramingError(RemoteProtocolError):
    """The stream cannot be resynchronised (bad command_length): close the connection."""

    status = Status.RINVCMDLEN


class PduError(RemoteProtocolError):
    """One frame is intact but its body is malformed; the stream goes on.

    ``command_id`` and ``sequence_number`` come from the intact header, so the
    session can answer that request with ``status`` (or a generic_nack).
    """

    status = Status.RINVMSGLEN

    def __init__(
        self,
        message: str,
        *,
        command_id: int,
        sequence_number: int,
        status: int | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.command_id = command_id
        self.sequence_number = sequence_number


class UnknownCommandError(PduError):
    """The header names a command_id this core does not know: answer generic_nack."""

    status = Status.RINVCMDID
