"""Anthropic's wire shapes."""
