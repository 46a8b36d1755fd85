"""Playout: when held audio may go, so a slow LLM plays without gaps (rule, timeline, pace)."""
