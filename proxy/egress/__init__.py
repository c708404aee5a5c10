"""Egress engine: which provider a call may go to, and which addresses a connection may reach."""
