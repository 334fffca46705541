"""Vigie: a news monitor. Polls feeds, matches operator rules, stores and delivers alerts."""

__version__ = "0.1.0"
