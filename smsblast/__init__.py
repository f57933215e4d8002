"""smsblast: a bulk SMS blast engine for mobile operators."""

__version__ = "0.1.0"
