"""Guardrails: checks on what goes to a model and what comes back (``rules`` declares them,
``detectors`` finds personal data and secrets, ``guard`` runs them on one run)."""
