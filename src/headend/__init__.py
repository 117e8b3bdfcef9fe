"""headend: AI agents and plain models behind the APIs every LLM client already speaks."""

__version__ = "0.1.0"
__all__ = ["__version__"]
