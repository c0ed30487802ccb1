"""Implementations under test, behind the protocol in candidates/protocol.py."""
