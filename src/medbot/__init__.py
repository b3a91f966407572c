"""medbot: a friendly, self-hosted medication-reminder chat bot."""

__version__ = "0.1.0"
