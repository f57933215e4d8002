"""The blast engine: Kafka segments -> render -> route -> throttled SMPP binds -> ledger."""
