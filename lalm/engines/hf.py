"""The transformers engine: the model in-process, no vLLM needed (laptops, macOS, tests), the reference that
vLLM's output is checked against, and the model code training uses.

Concurrent requests are batched continuously: one worker thread decodes all running requests together with
a shared KV cache; between decode steps it admits newly queued requests (one prefill for the newcomers,
whose cache is then left-padded and stacked onto the running one) and retires finished rows. Each row keeps
its own sampling parameters, seed, stop strings and token budget, so batching never changes what a
request gets: greedy output is the same batched or alone.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers.cache_utils import Cache

from lalm.engines.base import (
    Completion,
    Delta,
    Engine,
    EngineError,
    Message,
    SamplingParams,
    Usage,
)
from lalm.engines.messages import WINDOW_SECONDS, check_audio_lengths, to_hf_messages
from lalm.engines.token_text import token_text

__all__ = ["HFEngine"]

# Temperatures below this are greedy, as in vLLM (vllm/sampling_params.py): dividing logits by a
# vanishing temperature overflows to inf and softmax to NaN.
_SAMPLING_EPS = 1e-5


@dataclass
class _Request:
    input_ids: list[int]
    features: tuple[torch.Tensor, torch.Tensor] | None  # (input_features, feature_attention_mask)
    params: SamplingParams
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue
    generator: torch.Generator
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # of each sampled token, when params.logprobs
    top: list[list[tuple[int, float]]] = field(default_factory=list)  # (id, logprob) alternatives, top_logprobs
    text: str = ""
    sent: int = 0
    logprobs_sent: int = 0  # how many of `logprobs` went out with a delta
    cancelled: bool = False

    def emit(self, item: Delta | BaseException) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, item)


@dataclass
class _Batch:
    """Rows being decoded together: one KV cache, left-padded to a common length."""

    rows: list[_Request]
    cache: Cache
    mask: torch.Tensor  # (rows, length) 1 where a position holds a real token
    last_pos: torch.Tensor  # (rows,) position id of each row's last token
    logits: torch.Tensor  # (rows, vocab) logits for each row's next token, not yet sampled

    def select(self, keep: list[int]) -> None:
        index = torch.tensor(keep, device=self.logits.device)
        for layer in self.cache.layers:
            layer.batch_select_indices(index)
        self.rows = [self.rows[i] for i in keep]
        self.mask, self.last_pos, self.logits = self.mask[keep], self.last_pos[keep], self.logits[index]

    def merge(self, other: _Batch) -> _Batch:
        """Admit `other`'s rows: left-pad both caches and masks to one length and stack them."""
        length = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, length, 2), _left_pad(theirs.keys, length, 2)])
            mine.values = torch.cat([_left_pad(mine.values, length, 2), _left_pad(theirs.values, length, 2)])
        self.mask = torch.cat([_left_pad(self.mask, length, 1), _left_pad(other.mask, length, 1)])
        self.rows = self.rows + other.rows
        self.last_pos = torch.cat([self.last_pos, other.last_pos])
        self.logits = torch.cat([self.logits, other.logits])
        return self


def _left_pad(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class HFEngine(Engine):
    """Qwen2-Audio through transformers, with request batching."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        model_name: str | None = None,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        max_batch_size: int = 8,
        batch_wait_ms: float = 10.0,
        default_max_tokens: int = 1024,
        max_model_len: int | None = None,
    ) -> None:
        self.model_path = str(model_path)
        self.model_name = model_name or self.model_path
        self.dtype = dtype
        self.device = device
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000
        self.default_max_tokens = default_max_tokens
        self._max_model_len = max_model_len
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.model = None
        self.processor = None

    # --- lifecycle ---
    def load(self) -> None:
        """Load weights and start the batching worker (blocking; `start` does this off the event loop)."""
        with self._lock:
            if self._thread is not None:
                return
            from lalm.modeling.checkpoint import load_checkpoint

            self.model, self.processor = load_checkpoint(self.model_path, dtype=self.dtype, device=self.device)
            tok = self.processor.tokenizer
            gen = self.model.generation_config
            eos = gen.eos_token_id if gen is not None and gen.eos_token_id is not None else tok.eos_token_id
            self.eos_ids = set(eos if isinstance(eos, list) else [eos])
            self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(self.eos_ids)
            self.max_model_len = self._max_model_len or self.model.config.text_config.max_position_embeddings
            self._thread = threading.Thread(target=self._worker, name="hf-engine", daemon=True)
            self._thread.start()

    async def start(self) -> None:
        await asyncio.to_thread(self.load)

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None

    async def ready(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def context_length(self) -> int:
        """`max_model_len` when given, else the language model's `max_position_embeddings`."""
        if self._thread is None:
            await self.start()
        return self.max_model_len

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        """The prompt tokens of `messages` as `generate` would encode them (the checkpoint's chat template)."""
        if self._thread is None:
            await self.start()
        input_ids, _ = await asyncio.to_thread(self._encode_prompt, messages)
        return len(input_ids)

    # --- requests ---
    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        req = await self._submit(messages, params)
        texts: list[str] = []
        async for delta in self._events(req):
            texts.append(delta.text)
            if delta.finish_reason is not None:
                return Completion("".join(texts), delta.finish_reason, delta.usage or Usage(), tuple(req.token_ids),
                                  self._text_logprobs(req.token_ids, req.logprobs),
                                  self._text_top(req.token_ids, req.top))
        raise EngineError("the transformers engine ended a request without finishing it", 500)

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        req = await self._submit(messages, params)
        async for delta in self._events(req):
            yield delta

    async def _events(self, req: _Request) -> AsyncIterator[Delta]:
        try:
            while True:
                item = await req.events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            req.cancelled = True

    async def _submit(self, messages: Sequence[Message], params: SamplingParams) -> _Request:
        if self._thread is None:
            await self.start()
        input_ids, features = await asyncio.to_thread(self._encode_prompt, messages)
        room = self.max_model_len - len(input_ids)
        if room < 1:
            raise EngineError(
                f"The prompt is {len(input_ids)} tokens; the model's context is {self.max_model_len}.",
                400, "context_length_exceeded",
            )
        max_tokens = min(params.max_tokens or self.default_max_tokens, room)
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        req = _Request(
            input_ids=input_ids, features=features, params=params, max_tokens=max_tokens,
            loop=asyncio.get_running_loop(), events=asyncio.Queue(),
            generator=torch.Generator().manual_seed(seed),
        )
        self._queue.put(req)
        return req

    def _encode_prompt(
        self, messages: Sequence[Message]
    ) -> tuple[list[int], tuple[torch.Tensor, torch.Tensor] | None]:
        """Prompt token ids with each audio's placeholder expanded, as the processor (and vLLM) do, and the
        audios' log-mel features (computed here, off the worker thread)."""
        check_audio_lengths(messages, WINDOW_SECONDS)
        hf_messages = to_hf_messages(messages)
        text = self.processor.apply_chat_template(hf_messages, add_generation_prompt=True, tokenize=False)
        audios = [p.samples for m in messages for p in m.audios]
        if not audios:
            return self.processor.tokenizer(text, add_special_tokens=False)["input_ids"], None
        out = self.processor(text=[text], audio=audios, sampling_rate=16000, return_tensors="pt")
        return out["input_ids"][0].tolist(), (out["input_features"], out["feature_attention_mask"])

    # --- the worker thread: continuous batching ---
    def _worker(self) -> None:
        batch: _Batch | None = None
        while True:
            new = self._take(block=batch is None, room=self.max_batch_size - (len(batch.rows) if batch else 0))
            if new is None:
                if batch is not None:
                    for r in batch.rows:
                        r.emit(EngineError("the engine is shutting down", 503, "engine_stopped"))
                return
            try:
                with torch.inference_mode():
                    if new:
                        fresh = self._prefill(new)
                        batch = fresh if batch is None else batch.merge(fresh)
                    if batch is not None:
                        batch = self._step(batch)
            except Exception as exc:  # a failed step fails its requests, never the worker
                for r in (batch.rows if batch else []) + new:
                    r.emit(EngineError(f"generation failed: {exc}", 500))
                batch = None

    def _take(self, *, block: bool, room: int) -> list[_Request] | None:
        """Requests to admit now: when idle, wait for one and then `batch_wait_ms` for company; when busy,
        only those already queued. None means shut down."""
        taken: list[_Request] = []
        if block:
            first = self._queue.get()
            if first is None:
                return None
            taken.append(first)
        deadline = time.monotonic() + (self.batch_wait_s if block else 0.0)
        while len(taken) < room:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic())) if block \
                    else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return None
            taken.append(item)
        return [r for r in taken if not r.cancelled]

    def _prefill(self, reqs: list[_Request]) -> _Batch:
        dev = self.device
        width = max(len(r.input_ids) for r in reqs)
        ids = torch.full((len(reqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(reqs), width), dtype=torch.long)
        for i, r in enumerate(reqs):
            ids[i, width - len(r.input_ids):] = torch.tensor(r.input_ids)
            mask[i, width - len(r.input_ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs = {}
        feats = [r.features for r in reqs if r.features is not None]
        if feats:
            kwargs = {"input_features": torch.cat([f for f, _ in feats]).to(dev, self.dtype),
                      "feature_attention_mask": torch.cat([m for _, m in feats]).to(dev)}
        out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                         use_cache=True, **kwargs)
        return _Batch(reqs, out.past_key_values, mask, positions[:, -1].clone(), out.logits[:, -1, :])

    def _step(self, batch: _Batch) -> _Batch | None:
        """Sample one token for every row, retire finished rows, and run one decode step for the rest."""
        next_ids = [self._sample(batch.logits[i], r) for i, r in enumerate(batch.rows)]
        for i, r in enumerate(batch.rows):
            if r.params.logprobs:
                logprobs = torch.log_softmax(batch.logits[i].float(), dim=-1)
                r.logprobs.append(float(logprobs[next_ids[i]]))
                if r.params.top_logprobs:
                    values, ids = logprobs.topk(r.params.top_logprobs)
                    r.top.append(list(zip(ids.tolist(), values.tolist(), strict=True)))
        keep = [i for i, r in enumerate(batch.rows) if not self._advance(r, next_ids[i])]
        if not keep:
            return None
        if len(keep) < len(batch.rows):
            batch.select(keep)
            next_ids = [next_ids[i] for i in keep]
        dev = self.device
        batch.mask = torch.cat([batch.mask, torch.ones((len(keep), 1), dtype=torch.long)], dim=1)
        batch.last_pos = batch.last_pos + 1
        out = self.model(input_ids=torch.tensor(next_ids, device=dev)[:, None], attention_mask=batch.mask.to(dev),
                         position_ids=batch.last_pos[:, None].to(dev), past_key_values=batch.cache, use_cache=True)
        batch.cache, batch.logits = out.past_key_values, out.logits[:, -1, :]
        return batch

    @staticmethod
    def _sample(logits: torch.Tensor, req: _Request) -> int:
        p = req.params
        if p.temperature < _SAMPLING_EPS:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / p.temperature, dim=-1)
        if p.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            # keep the smallest prefix whose mass reaches top_p, and always the top token (a top_p that
            # rounds to 0 in float32 would otherwise drop every token)
            drop = sorted_probs.cumsum(-1) - sorted_probs >= p.top_p
            drop[0] = False
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs.cpu(), 1, generator=req.generator))

    def _advance(self, req: _Request, token: int) -> bool:
        """Add `token` to `req`, stream what is safe to show, and return True when the request is done."""
        if req.cancelled:
            return True
        finish = None
        if token in self.eos_ids:
            finish = "stop"
        req.token_ids.append(token)
        if finish is None:
            req.text = self.processor.tokenizer.decode(req.token_ids, skip_special_tokens=True)
            cut = min((i for i in (req.text.find(s) for s in req.params.stop if s) if i >= 0), default=-1)
            if cut >= 0:
                req.text, finish = req.text[:cut], "stop"
            elif len(req.token_ids) >= req.max_tokens:
                finish = "length"
        if finish is None:
            # Hold back a partial UTF-8 character and anything that may still become a stop string.
            hold = max((len(s) - 1 for s in req.params.stop if s), default=0)
            safe = len(req.text) - hold
            while safe > req.sent and req.text[safe - 1] == "\ufffd":
                safe -= 1
            if safe > req.sent:
                req.emit(Delta(req.text[req.sent:safe], **self._new_logprobs(req)))
                req.sent = safe
            return False
        usage = Usage(prompt_tokens=len(req.input_ids), completion_tokens=len(req.token_ids))
        req.emit(Delta(req.text[req.sent:], finish_reason=finish, usage=usage, **self._new_logprobs(req)))
        req.sent = len(req.text)
        return True

    def _new_logprobs(self, req: _Request) -> dict[str, tuple]:
        """A Delta's `logprobs` and `top_logprobs` fields: the tokens sampled since the last delta (none unless
        params.logprobs)."""
        done = req.logprobs_sent
        req.logprobs_sent = len(req.logprobs)
        return {"logprobs": self._text_logprobs(req.token_ids, req.logprobs, done),
                "top_logprobs": self._text_top(req.token_ids, req.top, done)}

    def _text_logprobs(self, token_ids: list[int], logprobs: list[float], start: int = 0
                       ) -> tuple[tuple[str, float], ...]:
        """(token text, logprob) of the sampled tokens from `start` on; texts as lalm.engines.token_text says."""
        decode = self.processor.tokenizer.decode
        return tuple((token_text(decode, token_ids[i], token_ids, i), logprobs[i]) for i in range(start, len(logprobs)))

    def _text_top(self, token_ids: list[int], top: list[list[tuple[int, float]]], start: int = 0
                  ) -> tuple[tuple[tuple[str, float], ...], ...]:
        """The alternatives of each step from `start` on as (token text, logprob), after the tokens sampled
        before that step."""
        decode = self.processor.tokenizer.decode
        return tuple(tuple((token_text(decode, t, token_ids, i), lp) for t, lp in top[i])
                     for i in range(start, len(top)))
