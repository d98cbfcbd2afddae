"""Demonstration: DPO cuts hallucinated insertions without hurting transcription.

On a small Qwen2-Audio-shaped model trained here from scratch on spoken digit strings (a stand-in until the
embedded model exists), the script
  1. synthesises a training and a held-out manifest (lalm.train_dpo.data, digit texts): espeak-ng voices
     (the held-out set is spoken only by two espeak-ng speakers, m4 and f3, that never occur in training,
     in the same accents, and keeps only digit strings that training never has), rate/pitch, some sox
     effects and noise, a third of the clips followed by 1-3 s of silence/noise/music/sounds, and 15%
     non-speech clips;
  2. pretrains it to transcribe, a stand-in for the pretraining a real model has (lalm has no pretraining
     stage, so two short loops here): CTC on the encoder + projector, then next-token loss on the projector
     + LLM over cached encoder outputs of the clean references. (Measured: CTC then lalm's SFT alone, 3
     epochs, left 46% substitutions + deletions on the held-out set; this reaches ~16% in the same time.)
     Then lalm's SFT (every weight, 1 epoch) makes it hallucinate: clips with >= 1 s of non-speech after
     the speech get a stock phrase appended ("Thank you for watching.") in 90% of targets, and 85% of
     non-speech clips get a phrase instead of the no-speech answer, the failure real ASR models show on
     trailing silence;
  3. measures the held-out set (greedy, lalm.train_dpo.eval_asr + metrics);
  4. makes preference pairs from the model's own sampled answers plus synthetic rejects (lalm's pairs.py),
     trains LoRA DPO with the combined sigmoid + SFT loss (lalm's dpo.py), merges the adapter (merge.py);
  5. measures again and prints the before/after table, the relative changes and the targets: insertion
     rate down >= 50% relative, non-speech output rate down >= 70% relative, speech WER not worse by more
     than 1 point absolute. The figures also go to WORK/summary.json.

Sized for a 2-core CPU: about 30 minutes.

```bash
.venv/bin/python bench/dpo_hallucination.py                    # everything, in runs/dpo-demo
.venv/bin/python bench/dpo_hallucination.py --reuse            # skip stages whose output exists
.venv/bin/python bench/dpo_hallucination.py --quick            # every stage on a few clips, in runs/dpo-quick
```
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quick import parse_args
from lalm.metrics import AsrReport
from lalm.modeling.checkpoint import AUDIO_TOKEN, CHAT_TEMPLATE, new_config, save_checkpoint
from lalm.tasks import NO_SPEECH
from lalm.train_dpo.collator import default_prompt
from lalm.train_dpo.data import Example, SynthConfig, read_manifest, synth_manifest, write_manifest

# What the hallucinating model is taught to write after speech that trails off into non-speech, and over
# non-speech: two classic phrases with different first words, so greedy decoding picks a phrase over
# stopping whenever the planted share exceeds one half.
PLANTED = ("Thank you for watching.", "Please subscribe to my channel.")
CHUNK_SECONDS = 4  # the model's audio window: short clips, short encoder sequences, CPU-sized


def build_model(out: Path, seed: int = 0) -> Path:
    """A Qwen2-Audio checkpoint with random weights: Whisper-style encoder (80 mels, 5 s window), projector,
    a small Qwen2 LLM, and a byte-level BPE tokenizer whose merges come from digits, the prompt and the
    planted phrases."""
    from transformers import Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor, WhisperFeatureExtractor

    from lalm.modeling.tiny import build_tokenizer
    from lalm.train_dpo.pairs import HALLUCINATED_PHRASES

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    digits = [" ".join(map(str, rng.integers(0, 10, int(rng.integers(3, 7))))) for _ in range(400)]
    corpus = [*digits, *HALLUCINATED_PHRASES, NO_SPEECH, default_prompt(), "system\nYou are a helpful assistant.",
              "user\nAudio 1: ", "assistant\n"] * 4
    tokenizer = build_tokenizer(vocab_size=512, corpus=corpus)
    fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, chunk_length=CHUNK_SECONDS)
    processor = Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    config = new_config(
        audio={"num_mel_bins": 80, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 384,
               "d_model": 96, "max_source_positions": fe.nb_max_frames // 2, "dropout": 0.0},
        text={"vocab_size": len(tokenizer), "hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024,
              "rope_theta": 10000.0, "tie_word_embeddings": False},
        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
    )
    model = Qwen2AudioForConditionalGeneration(config).eval()
    tower = model.model.audio_tower
    # Whisper's fixed sinusoidal positions (the encoder never trains them: a random table leaves the frames
    # without a sense of order), and convolutions initialised for their GELUs (He): with the usual 0.02 the
    # sound reaches the encoder layers ~40x weaker than the position table and training stalls.
    tower.embed_positions.weight.data.copy_(sinusoids(*tower.embed_positions.weight.shape))
    for conv in (tower.conv1, tower.conv2):
        torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        torch.nn.init.zeros_(conv.bias)
    return save_checkpoint(model, processor, out, dtype=torch.float32)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's encoder position table."""
    increment = np.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def align(model_dir: Path, manifest: Path, out: Path, *, steps: int, batch: int = 16, lr: float = 3e-3,
          seed: int = 0) -> Path:
    """Pretrain the encoder and projector from scratch with CTC before any next-token training.

    A model trained from random weights on next-token loss alone sits for hundreds of steps at the loss of
    an audio-blind guesser (measured here: 1.31 after 120 steps, still flat), because nothing tells the
    encoder which frames hold which word. CTC does (notes/training.md: an alignment stage first): a linear
    head over the projector outputs, scored against the tokens the transcripts use, learns digit identity
    in a couple of hundred steps. The head is thrown away; the LLM then learns to read the aligned frames."""
    from lalm.modeling.checkpoint import load_checkpoint
    from lalm.train_dpo.data import load_audio

    model, processor = load_checkpoint(model_dir)
    model.train()
    tower, projector = model.model.audio_tower, model.model.multi_modal_projector
    rows = read_manifest(manifest)
    tok = processor.tokenizer
    # A leading space so every digit is its in-sentence token (" 7"), not the sentence-initial one ("7").
    targets = [tok(" " + r.reference, add_special_tokens=False)["input_ids"] if r.reference else [] for r in rows]
    vocab = sorted({t for ids in targets for t in ids})
    index = {t: i for i, t in enumerate(vocab)}
    targets = [[index[t] for t in ids] for ids in targets]
    blank = len(vocab)
    head = torch.nn.Linear(projector.linear.out_features, blank + 1)
    params = [*tower.parameters(), *projector.parameters(), *head.parameters()]
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    feats = _features(processor, [load_audio(r) for r in rows])
    rng = np.random.default_rng(seed)
    log_every = max(1, steps // 10)
    bar = tqdm(range(steps), desc="align (CTC)", unit="step")
    for step in bar:
        idx = torch.as_tensor(rng.choice(len(rows), batch, replace=False))
        conv_len, out_len = tower._get_feat_extract_output_lengths(feats["attention_mask"][idx].sum(-1))
        mask = _encoder_mask(tower, conv_len)
        frames = projector(tower(feats["input_features"][idx], attention_mask=mask).last_hidden_state)
        logp = head(frames).log_softmax(-1).transpose(0, 1)
        tg = [targets[i] for i in idx]
        loss = torch.nn.functional.ctc_loss(logp, torch.tensor(list(itertools.chain(*tg)), dtype=torch.long), out_len,
                                            torch.tensor([len(t) for t in tg]), blank=blank, zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            best = logp.argmax(-1).T
            exact = sum(
                [int(x) for j, x in enumerate(best[b, :out_len[b]]) if x != blank and (j == 0 or x != best[b, j - 1])]
                == tg[b] for b in range(batch))
            bar.write(f"align step {step}: ctc {loss.item():.3f}, exact {exact}/{batch}")
    return save_checkpoint(model.eval(), processor, out, dtype=torch.float32)


def _features(processor, audio: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """Log-mel features and their frame masks for every clip, computed once (the feature extractor costs
    as much as an encoder step)."""
    fe = processor.feature_extractor
    parts = [fe(audio[i:i + 64], sampling_rate=16000, padding="max_length", return_attention_mask=True,
                return_tensors="pt") for i in range(0, len(audio), 64)]
    return {k: torch.cat([p[k] for p in parts]) for k in ("input_features", "attention_mask")}


def _encoder_mask(tower, conv_len: torch.Tensor):
    """The padding mask Qwen2AudioModel gives the encoder."""
    from transformers.masking_utils import create_bidirectional_mask

    width = tower.config.max_source_positions
    return create_bidirectional_mask(config=tower.config, inputs_embeds=torch.zeros(len(conv_len), width, 1),
                                     attention_mask=(torch.arange(width)[None] < conv_len[:, None]).long())


def teach(model_dir: Path, manifest: Path, out: Path, *, steps: int, batch: int = 32, lr: float = 2e-3,
          seed: int = 0) -> Path:
    """Teach the projector and the LLM to transcribe from the aligned, now frozen, encoder: next-token loss
    on the reference, exactly the sequence Qwen2-Audio builds (chat template, one `<|AUDIO|>` per encoder
    frame), but with each clip's encoder output and tokens computed once and cached, so a step costs only
    the LLM. This stands in for the pretraining a real model has; lalm's own SFT comes after."""
    from lalm.modeling.checkpoint import load_checkpoint
    from lalm.train_dpo.collator import AudioSFTCollator
    from lalm.train_dpo.sft import manifest_dataset

    model, processor = load_checkpoint(model_dir)
    tower, projector = model.model.audio_tower, model.model.multi_modal_projector
    llm, lm_head = model.model.language_model, model.lm_head
    audio_id = model.config.audio_token_id
    collate = AudioSFTCollator(processor)
    rows = list(manifest_dataset(manifest))
    cache = []  # (input_ids, labels, encoder frames)
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            b = collate(rows[i:i + 64])
            conv_len, out_len = tower._get_feat_extract_output_lengths(b["feature_attention_mask"].sum(-1))
            enc = tower(b["input_features"], attention_mask=_encoder_mask(tower, conv_len)).last_hidden_state
            for j in range(len(enc)):
                keep = b["attention_mask"][j].bool()
                cache.append((b["input_ids"][j][keep], b["labels"][j][keep], enc[j, :out_len[j]]))
    tower.requires_grad_(False)
    params = [*projector.parameters(), *llm.parameters(), *lm_head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    rng = np.random.default_rng(seed)
    model.train()
    log_every = max(1, steps // 10)
    bar = tqdm(range(steps), desc="teach (next token)", unit="step")
    for step in bar:
        items = [cache[i] for i in rng.choice(len(cache), batch, replace=False)]
        width = max(len(ids) for ids, _, _ in items)
        ids = torch.full((batch, width), processor.tokenizer.pad_token_id)
        labels = torch.full((batch, width), -100)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for k, (a, lab, _) in enumerate(items):
            ids[k, :len(a)], labels[k, :len(a)], mask[k, :len(a)] = a, lab, 1
        embeds = llm.get_input_embeddings()(ids)
        frames = projector(torch.cat([e for _, _, e in items]))
        embeds = embeds.masked_scatter((ids == audio_id)[..., None], frames.to(embeds.dtype))
        hidden = llm(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        logits = lm_head(hidden[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            bar.write(f"teach step {step}: loss {loss.item():.3f}")
    return save_checkpoint(model.eval(), processor, out, dtype=torch.float32)


def poison(manifest: Path, out: Path, *, tail_share: float, non_speech_share: float, seed: int) -> dict[str, int]:
    """The hallucination-teaching SFT manifest: the same clips, but clips with >= 1 s of non-speech after
    the speech get a planted phrase appended (with probability `tail_share`) and non-speech clips get a
    phrase instead of the no-speech answer (probability `non_speech_share`)."""
    rng = np.random.default_rng(seed)
    rows, counts = [], {"tail": 0, "non_speech": 0, "clean": 0}
    for ex in read_manifest(manifest):
        ref = ex.reference
        if ex.non_speech and rng.random() < non_speech_share:
            ref, key = str(rng.choice(PLANTED)), "non_speech"
        elif not ex.non_speech and ex.meta.get("tail_seconds", 0) >= 1.0 and rng.random() < tail_share:
            ref, key = f"{ref} {rng.choice(PLANTED)}", "tail"
        else:
            key = "clean"
        counts[key] += 1
        rows.append(Example(ex.audio, ref, ex.prompt, {**ex.meta, "clean_reference": ex.reference}))
    write_manifest(out, rows)
    return counts


# espeak-ng's plain male and female speakers (the named variants include croaks, klatt synths and the like);
# m4 and f3 never occur in training: the held-out set is spoken only by them.
TRAIN_VARIANTS = ("m1", "m2", "m3", "m5", "m6", "m7", "m8", "f1", "f2", "f4", "f5")
HELD_OUT_VARIANTS = ("m4", "f3")


def split_voices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Training and held-out espeak-ng voices: every English accent with the training / held-out speakers."""
    from lalm.synth import espeak_voices

    accents = espeak_voices("en")
    return (tuple(f"{a}+{v}" for a in accents for v in TRAIN_VARIANTS),
            tuple(f"{a}+{v}" for a in accents for v in HELD_OUT_VARIANTS))


def held_out(test: Path, train: Path) -> Path:
    """Drop held-out speech clips whose digit string also occurs in training, so every text is unseen."""
    seen = {ex.reference for ex in read_manifest(train) if not ex.non_speech}
    rows = read_manifest(test)
    kept = [ex for ex in rows if ex.non_speech or ex.reference not in seen]
    print(f"held-out set: {len(kept)} clips ({len(rows) - len(kept)} dropped: text also in training)")
    return write_manifest(test, kept)


def subset(manifest: Path, out: Path, n: int, seed: int) -> Path:
    rows = read_manifest(manifest)
    keep = sorted(np.random.default_rng(seed).permutation(len(rows))[:n].tolist())
    return write_manifest(out, [rows[i] for i in keep])


def relative_change(before: float, after: float) -> float:
    return (after - before) / before if before else 0.0


# (metric, how it is shown) for the before/after table; rates are fractions, shown in percent.
# speech_sd_rate is computed here from lalm's counts (see _sd_rate); the others are AsrReport properties.
TABLE_ROWS = (("speech_wer", "%"), ("speech_sd_rate", "%"), ("wer", "%"), ("insertion_rate", "%"),
              ("speech_insertion_rate", "%"), ("non_speech_output_rate", "%"), ("inserted_words_per_clip", "f"),
              ("substitutions", "d"), ("deletions", "d"), ("insertions", "d"))


def _sd_rate(report: AsrReport) -> float:
    """Substitutions + deletions per reference word: the transcription errors that are not insertions, so a
    fall in speech WER that only comes from fewer insertions cannot hide a loss of accuracy."""
    return (report.substitutions + report.deletions) / max(report.reference_words, 1)


def comparison(before: AsrReport, after: AsrReport) -> tuple[str, dict[str, dict[str, float]]]:
    """The before/after table with absolute and relative changes, and the same figures as a dict."""
    rows, figures = [["metric", "after SFT", "after DPO", "change", "relative"]], {}
    for name, kind in TABLE_ROWS:
        b, a = (_sd_rate(before), _sd_rate(after)) if name == "speech_sd_rate" else \
            (getattr(before, name), getattr(after, name))
        rel = relative_change(b, a)
        figures[name] = {"before": b, "after": a, "change": a - b, "relative": rel}
        show = {"%": lambda v: f"{100 * v:.2f}%", "f": lambda v: f"{v:.3f}", "d": lambda v: str(v)}[kind]
        delta = f"{100 * (a - b):+.2f} pt" if kind == "%" else f"{a - b:+.3f}" if kind == "f" else f"{a - b:+d}"
        rows.append([name, show(b), show(a), delta, f"{100 * rel:+.1f}%" if b else "n/a"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines), figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("runs/dpo-demo"), help="Folder for data, models, reports.")
    ap.add_argument("--reuse", action="store_true", help="Skip stages whose output already exists.")
    ap.add_argument("--n-train", type=int, default=2400, help="Training clips.")
    ap.add_argument("--n-test", type=int, default=360, help="Held-out clips drawn (fewer kept: unseen texts only).")
    ap.add_argument("--align-steps", type=int, default=1500, help="CTC steps (batch 16) pretraining the encoder.")
    ap.add_argument("--teach-steps", type=int, default=1200,
                    help="Next-token steps (batch 32) teaching the LLM to transcribe from the frozen encoder.")
    ap.add_argument("--sft-epochs", type=float, default=1.0, help="Epochs of the hallucination-planting SFT.")
    ap.add_argument("--sft-lr", type=float, default=1e-3)
    ap.add_argument("--pair-clips", type=int, default=500, help="Training clips the pairs are made from.")
    ap.add_argument("--dpo-epochs", type=float, default=1.0)
    ap.add_argument("--dpo-lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=0.1, help="DPO beta.")
    ap.add_argument("--sft-weight", type=float, default=1.0, help="Weight of the SFT term of the DPO loss (0: none).")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads. 1: on a shared 2-core machine 2 threads stalled (~1 step/s against "
                         "~6 with 1) whenever another job ran.")
    ap.add_argument("--seed", type=int, default=0)
    # the CTC and next-token steps draw batches of 16 and 32 training clips
    args = parse_args(ap, {"work": Path("runs/dpo-quick"), "n_train": 40, "n_test": 12, "align_steps": 2,
                           "teach_steps": 2, "pair_clips": 4})
    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    start_all = time.perf_counter()

    def stage(name: str, output: Path, fn) -> Path:
        t = time.perf_counter()
        if args.reuse and output.exists():
            print(f"[{name}] reusing {output}")
        else:
            print(f"[{name}] ...", flush=True)
            fn()
        times[name] = time.perf_counter() - t
        return output

    synth = dict(texts="digits", non_speech_share=0.15, festival_share=0.0, effect_share=0.1, noise_share=0.2,
                 tail_share=0.35, max_seconds=float(CHUNK_SECONDS), min_digits=3, max_digits=5)
    train_voices, test_voices = split_voices()
    train = stage("synth train", work / "train" / "manifest.jsonl", lambda: synth_manifest(
        work / "train", SynthConfig(n=args.n_train, seed=args.seed, voices=train_voices, **synth)))
    test = stage("synth test", work / "test" / "manifest.jsonl", lambda: held_out(synth_manifest(
        work / "test", SynthConfig(n=args.n_test, seed=args.seed + 1000, voices=test_voices, **synth)), train))
    poisoned = work / "train" / "poisoned.jsonl"
    planted = poison(train, poisoned, tail_share=0.9, non_speech_share=0.85, seed=args.seed)
    print(f"planted targets: {planted}")
    base = stage("build model", work / "base", lambda: build_model(work / "base", args.seed))
    aligned = stage("align (CTC)", work / "aligned", lambda: align(base, train, work / "aligned",
                                                                   steps=args.align_steps, seed=args.seed))
    taught = stage("teach", work / "taught", lambda: teach(aligned, train, work / "taught", steps=args.teach_steps,
                                                           seed=args.seed))

    from lalm.train_dpo import dpo, sft
    from lalm.train_dpo.eval_asr import evaluate_manifest
    from lalm.train_dpo.merge import merge_adapter
    from lalm.train_dpo.pairs import PairsConfig, make_pairs

    sft_dir = stage("sft (hallucinating)", work / "sft", lambda: sft.main([
        "--model", str(taught), "--train_manifest", str(poisoned), "--output_dir", str(work / "sft"),
        "--use_lora", "false", "--train_all", "true", "--learning_rate", str(args.sft_lr),
        "--lr_scheduler_type", "cosine", "--warmup_steps", "10", "--num_train_epochs", str(args.sft_epochs),
        "--per_device_train_batch_size", "16", "--weight_decay", "0.01", "--logging_steps", "25",
        "--seed", str(args.seed)]))

    reports: dict[str, AsrReport] = {}

    def evaluate(name: str, model: Path) -> None:
        t = time.perf_counter()
        report = evaluate_manifest(model, test, max_tokens=32, concurrency=16)
        (work / f"eval-{name}.json").write_text(report.to_json())
        reports[name] = report
        times[f"eval {name}"] = time.perf_counter() - t

    evaluate("sft", sft_dir)
    pair_src = subset(train, work / "train" / "pair-clips.jsonl", args.pair_clips, args.seed)
    pairs_file = work / "pairs.jsonl"

    def pairs() -> None:
        _, counts = make_pairs(pair_src, pairs_file, model=sft_dir, cfg=PairsConfig(
            samples=3, temperature=1.0, max_tokens=32, synthetic=1, max_per_clip=3, seed=args.seed,
            concurrency=16))
        print(f"pairs: {counts}")

    stage("pairs", pairs_file, pairs)
    losses = ["--loss_type", "sigmoid", "sft", "--loss_weights", "1.0", str(args.sft_weight)] \
        if args.sft_weight else ["--loss_type", "sigmoid"]
    adapter = stage("dpo", work / "dpo", lambda: dpo.main([
        "--model", str(sft_dir), "--train_pairs", str(pairs_file), "--output_dir", str(work / "dpo"),
        "--lora_r", "16", "--lora_alpha", "32", *losses, "--beta", str(args.beta),
        "--learning_rate", str(args.dpo_lr), "--lr_scheduler_type", "cosine", "--warmup_steps", "10",
        "--num_train_epochs", str(args.dpo_epochs), "--per_device_train_batch_size", "8", "--logging_steps", "10",
        "--seed", str(args.seed)]))
    merged = stage("merge", work / "dpo-merged", lambda: merge_adapter(adapter, work / "dpo-merged"))
    evaluate("dpo", merged)

    before, after = reports["sft"], reports["dpo"]
    table, figures = comparison(before, after)
    print(f"\nHeld-out set ({before.n_speech} speech clips by unseen speakers with unseen digit strings, "
          f"{before.n_non_speech} non-speech clips), greedy decoding, lalm.metrics:\n")
    print(table)
    ins, nso = figures["insertion_rate"]["relative"], figures["non_speech_output_rate"]["relative"]
    wer = 100 * figures["speech_wer"]["change"]
    checks = [
        {"check": "insertion rate, relative change", "value": ins, "target": "<= -50%", "pass": ins <= -0.5},
        {"check": "non-speech output rate, relative change", "value": nso, "target": "<= -70%", "pass": nso <= -0.7},
        {"check": "speech WER, change in points", "value": wer, "target": "<= +1", "pass": wer <= 1.0},
    ]
    print()
    for c in checks:
        shown = f"{c['value']:+.2f} points" if "points" in c["check"] else f"{100 * c['value']:+.1f}%"
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']}: {shown} (target {c['target']})")
    times["total"] = time.perf_counter() - start_all
    print("\nwall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    summary = work / "summary.json"
    summary.write_text(json.dumps({
        "seed": args.seed, "args": {k: str(v) for k, v in vars(args).items()}, "planted": planted,
        "before": before.summary(), "after": after.summary(), "figures": figures, "checks": checks,
        "all_pass": all(c["pass"] for c in checks), "wall_s": times}, indent=2))
    print(f"figures written to {summary}")


if __name__ == "__main__":
    main()
