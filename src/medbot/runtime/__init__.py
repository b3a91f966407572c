"""The asyncio service that wires the core, a store, a transport and a clock together."""
