"""Knowledge: files, vector stores, their ingestion and hybrid search."""
