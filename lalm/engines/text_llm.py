"""An in-process text LLM (transformers `AutoModelForCausalLM` with its chat template): the answering half of a
composed model (lalm.engines.composed). It takes text messages only — the composed engine has already turned
each audio part into its transcript. One generation runs at a time (a small model on CPU uses every core for
one); streaming goes through transformers' `TextIteratorStreamer`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lalm.engines.base import Capabilities, Completion, Delta, Engine, EngineError, Message, SamplingParams, Usage

if TYPE_CHECKING:
    import torch

__all__ = ["TextLLMEngine"]


class TextLLMEngine(Engine):
    """A Hugging Face causal-LM folder run in-process on CPU (float32). `default_max_tokens` bounds an answer
    whose request sets none."""

    def __init__(self, folder: str | Path, *, model_name: str | None = None, default_max_tokens: int = 512) -> None:
        self.folder = Path(folder)
        self.model_name = model_name or str(folder)
        self.default_max_tokens = default_max_tokens
        self.capabilities = Capabilities(family="lalm", chat=True, tasks=(), translation=False)
        self._model = self._tokenizer = None
        self._lock = threading.Lock()

    async def start(self) -> None:
        if self._model is None:
            await asyncio.to_thread(self._load)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        self._model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=torch.float32, local_files_only=True)
        self._model.eval()

    async def close(self) -> None:
        self._model = self._tokenizer = None

    async def ready(self) -> bool:
        return self._model is not None

    def _context(self) -> int:
        return int(getattr(self._model.config, "max_position_embeddings", 2048))

    async def context_length(self) -> int:
        """The model's context in tokens (its `max_position_embeddings`)."""
        if self._model is None:
            await self.start()
        return self._context()

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        """The prompt tokens of `messages`, chat template included, by the model's own tokenizer."""
        if self._model is None:
            await self.start()
        return int(self._template(messages).shape[1])

    def _inputs(self, messages: Sequence[Message]) -> torch.Tensor:
        """The chat-templated prompt's token ids, (1, T); a prompt that leaves no room to answer is a 400."""
        ids = self._template(messages)
        if ids.shape[1] >= self._context():
            raise EngineError(f"The prompt holds {ids.shape[1]} tokens; {self.model_name} takes at most "
                              f"{self._context()}.", status=400, code="context_length_exceeded")
        return ids

    def _template(self, messages: Sequence[Message]) -> torch.Tensor:
        """The token ids of `messages` through the chat template, generation prompt included, (1, T)."""
        chat = []
        for m in messages:
            if not isinstance(m.content, str) and m.audios:
                raise EngineError(f"{self.model_name} is a text model and cannot take audio.", status=400,
                                  code="model_capability")
            text = m.content if isinstance(m.content, str) else "\n".join(p for p in m.content if isinstance(p, str))
            chat.append({"role": m.role, "content": text})
        return self._tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                   return_dict=True)["input_ids"]

    def _kwargs(self, ids: torch.Tensor, params: SamplingParams) -> dict:
        import torch

        room = self._context() - ids.shape[1]
        kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                  "max_new_tokens": max(1, min(params.max_tokens or self.default_max_tokens, room)),
                  "pad_token_id": self._tokenizer.eos_token_id}
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self._tokenizer)
        return kwargs

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        text, finish, usage = "", "stop", Usage()
        async for d in self.stream(messages, params):
            text += d.text
            finish, usage = d.finish_reason or finish, d.usage or usage
        return Completion(text.strip(), finish, usage)

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        from transformers import TextIteratorStreamer

        if self._model is None:
            await self.start()
        ids = self._inputs(messages)
        kwargs = self._kwargs(ids, params)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict = {}

        def run() -> None:
            with self._lock:
                try:
                    result["out"] = self._model.generate(**kwargs, streamer=streamer)
                except Exception as exc:  # handed to the consumer below
                    result["error"] = exc
                    streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        pieces = iter(streamer)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            if piece:
                yield Delta(piece)
        await asyncio.to_thread(worker.join)
        if "error" in result:
            raise EngineError(f"{self.model_name} failed: {result['error']}", status=500) from result["error"]
        new = result["out"].shape[1] - ids.shape[1]
        finish = "length" if new >= kwargs["max_new_tokens"] else "stop"
        yield Delta("", finish, Usage(ids.shape[1], new))
