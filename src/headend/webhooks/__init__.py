"""Webhooks: OpenAI's events for background responses, signed per Standard Webhooks and
delivered at least once from an outbox in the store."""
