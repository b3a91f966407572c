"""The pure core: domain types, dose conversations, reply understanding, schedules, wording.

Nothing in this package performs I/O, reads the clock or uses asyncio: the current time
is always an argument.
"""
