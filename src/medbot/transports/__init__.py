"""Chat transports: each turns wire events into inbound messages and sends outgoing ones."""
