"""Persistence of dose cycles, the outbox and processed inbound messages."""
