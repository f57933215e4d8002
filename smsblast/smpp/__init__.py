"""Sans-IO SMPP v3.4 core: PDUs, codec, session state machine, receipts, text.

Nothing in this package imports asyncio, socket or a clock: bytes go in, typed
events come out, and the caller owns all I/O.
"""
