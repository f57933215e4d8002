"""Live control of a running engine: the admin HTTP API (:mod:`.server`), what it asks of the
engine (:mod:`.control`) and its command-line client, ``smsblast ctl`` (:mod:`.ctl`)."""
