"""Switchboard's decision engine: policies in, decisions out. No HTTP here."""
