"""The default-model recipe on a tiny configuration: the tiny random checkpoint as base, a dozen clips, a few
steps per stage. Shown: the cached frames are the audio tower's own, the corpus splits hold voices and texts
out, every stage runs and resumes to the same state, and the exported weights build a checkpoint whose answers
through the hf engine and through a real vLLM server equal the in-process model's."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from lalm.default_model.corpus import (
    HELD_OUT_VARIANTS,
    CorpusConfig,
    corpus_texts,
    make_clip,
    split_voices,
    word_list,
)
from lalm.default_model.features import FeatureSet, FrozenEncoder
from lalm.default_model.recipe import LOG_NAME, RecipeConfig, append_log, load_config, run_recipe

pytestmark = pytest.mark.slow

TINY_RECIPE = {
    "threads": 1, "workers": 1,
    "corpus": {"train_clips": 12, "heldout_speech": 4, "heldout_non_speech": 2, "word_clips": 4},
    "ctc": {"steps": 4, "batch_size": 4, "eval_every": 4, "eval_clips": 2, "negatives": 64, "checkpoint_every": 1},
    "copy": {"steps": 2, "batch_size": 4, "eval_every": 2, "eval_clips": 2},
    "sft": {"steps": 2, "batch_size": 4, "eval_every": 2, "eval_speech_clips": 2, "eval_non_speech_clips": 1,
            "negatives": 64, "copy_rows": 1},
}


def _config(root: Path, base: Path, **over):
    raw = {**TINY_RECIPE, "base": str(base), "cache_dir": str(root / "cache"), "workdir": str(root / "work"),
           "out": str(root / "out"), "init": "", **over}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "recipe.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_cached_frames_are_the_audio_towers_own(tiny_model: Path, speech: np.ndarray) -> None:
    from lalm.modeling.checkpoint import load_checkpoint

    model, processor = load_checkpoint(tiny_model)
    frames = torch.from_numpy(FrozenEncoder.from_checkpoint(tiny_model)(speech)).float()
    captured = {}
    tower = model.model.audio_tower
    hook = tower.avg_pooler.register_forward_pre_hook(lambda _m, inp: captured.setdefault("x", inp[0]))
    inputs = processor(text="Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nhi", audio=[speech], sampling_rate=16000,
                       return_tensors="pt")
    with torch.no_grad():
        model(**inputs)
    hook.remove()
    full = captured["x"][0].T[: len(frames)]
    assert (len(frames) - 2) // 2 + 1 == int((inputs["input_ids"] == model.config.audio_token_id).sum())
    # float16 storage is the only difference
    torch.testing.assert_close(frames, full, rtol=4e-3, atol=4e-3)


def test_corpus_holds_out_voices_and_texts() -> None:
    train_voices, held_voices = set(split_voices(False)), set(split_voices(True))
    assert train_voices and held_voices and not train_voices & held_voices
    assert all(v.split("+")[1] in HELD_OUT_VARIANTS for v in held_voices)
    assert not set(corpus_texts(False)) & set(corpus_texts(True))
    cfg = CorpusConfig()
    a, b = make_clip(cfg, "heldout_speech", 3), make_clip(cfg, "heldout_speech", 3)
    assert a.reference and a.reference == b.reference and np.array_equal(a.samples, b.samples)
    assert a.meta["voice"] in held_voices
    assert make_clip(cfg, "heldout_non_speech", 0).reference == ""


def test_word_clips_speak_common_words_in_training_voices_without_changing_the_corpus_key() -> None:
    cfg = CorpusConfig()
    words = set(word_list(cfg.word_list_size))
    assert len(words) > 30000 and {"the", "because", "tomorrow"} <= words and "tbf" not in words
    a, b = make_clip(cfg, "train_words", 5), make_clip(cfg, "train_words", 5)
    assert a.reference == b.reference and np.array_equal(a.samples, b.samples)
    spoken = a.reference.rstrip(".").lower().split()
    assert len(spoken) >= 3 and set(spoken) <= words
    assert a.meta["voice"] not in set(split_voices(True))
    assert a.reference != make_clip(cfg, "train", 5).reference
    with pytest.raises(ValueError, match="unknown split"):
        make_clip(cfg, "test", 0)
    key = RecipeConfig().corpus_dir()
    assert RecipeConfig(corpus=CorpusConfig(word_clips=500)).corpus_dir() == key  # a count: more shards only
    assert RecipeConfig(corpus=CorpusConfig(word_list_size=1000)).corpus_dir() != key


def test_stages_run_resume_and_export(tmp_path: Path, tiny_model: Path) -> None:
    straight = _config(tmp_path / "a", tiny_model, cache_dir=str(tmp_path / "cache"))
    run_recipe(straight, until="ctc", progress=False)
    # the same run stopped after 2 steps, then resumed: the same weights
    stopped = _config(tmp_path / "b", tiny_model, cache_dir=str(tmp_path / "cache"),
                      ctc={**TINY_RECIPE["ctc"], "steps": 2})
    run_recipe(stopped, until="ctc", progress=False)
    resumed = _config(tmp_path / "b", tiny_model, cache_dir=str(tmp_path / "cache"))
    run_recipe(resumed, train=False, progress=False)  # export only: trains nothing
    record = json.loads((tmp_path / "b/out/default_model.json").read_text())
    assert record["steps"] == {"ctc": 2} and torch.load(tmp_path / "b/work/ctc.pt", weights_only=False)["step"] == 2
    run_recipe(resumed, until="ctc", progress=False)
    a = torch.load(tmp_path / "a/work/ctc.pt", weights_only=False)
    b = torch.load(tmp_path / "b/work/ctc.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for key, value in a["modules"]["head"].items():
        torch.testing.assert_close(value, b["modules"]["head"][key], rtol=1e-5, atol=1e-6)
    rows = [r for r in (tmp_path / "b/work/log.jsonl").read_text().splitlines() if r]
    assert len(rows) >= 4 and '"ctc_heldout_wer"' in rows[-1]

    figures = run_recipe(straight, until="export", progress=False)
    assert {"heldout_wer", "no_speech_rate", "S/D/I", "ctc_heldout_wer"} <= set(figures)
    # the head's own CTC reading is scored beside the LLM's on the same clips and recordings
    assert figures["ctc_heldout_wer"] >= 0 and ("ctc_real_wer" in figures) == ("real_wer" in figures)
    assert figures["copy_wer"] >= 0 and figures["copy_shuffled_wer"] >= 0 and figures["copy_shuffled_insertions"] >= 0
    out = tmp_path / "a/out"
    assert {p.name for p in out.iterdir()} == {"head.safetensors", "lora.safetensors", "scorer.safetensors",
                                               "default_model.json", LOG_NAME}
    log = (tmp_path / "a/work/log.jsonl").read_text()
    assert '"stage": "copy"' in log and '"stage": "sft"' in log and "samples_per_s" in log
    # the committed log holds the work log's rows once, however often the weights are exported
    assert (out / LOG_NAME).read_text().splitlines() == [r for r in log.splitlines() if r]
    assert append_log(tmp_path / "a/work/log.jsonl", out / LOG_NAME) == 0

    # a machine with neither the work folder nor exported weights of its own resumes from `init` (the committed
    # weights): every stage is done, so nothing trains, and the export carries the same steps and the whole log
    fresh = _config(tmp_path / "c", tiny_model, cache_dir=str(tmp_path / "cache"), init=str(out))
    run_recipe(fresh, train=False, progress=False)
    assert json.loads((tmp_path / "c/out/default_model.json").read_text())["steps"] == json.loads(
        (out / "default_model.json").read_text())["steps"]
    assert (tmp_path / "c/out" / LOG_NAME).read_text().startswith((out / LOG_NAME).read_text())
    assert load_file(tmp_path / "c/out/lora.safetensors").keys() == load_file(out / "lora.safetensors").keys()

    # stage a raised after c and stopped part-way (here by a deadline already past): the export holds its
    # latest head with the LoRA weights stage c trained, not untrained ones
    raised = _config(tmp_path / "a", tiny_model, cache_dir=str(tmp_path / "cache"),
                     ctc={**TINY_RECIPE["ctc"], "steps": TINY_RECIPE["ctc"]["steps"] + 3})
    run_recipe(raised, progress=False, deadline=time.monotonic())
    record = json.loads((out / "default_model.json").read_text())
    assert record["steps"] == {"ctc": TINY_RECIPE["ctc"]["steps"] + 1, "copy": TINY_RECIPE["copy"]["steps"],
                               "sft": TINY_RECIPE["sft"]["steps"]} and record["stage"] == "sft"
    sft_lora = torch.load(tmp_path / "a/work/sft.pt", weights_only=False)["modules"]["lora"]
    exported = load_file(out / "lora.safetensors")
    assert exported.keys() == sft_lora.keys()
    for key, value in sft_lora.items():
        torch.testing.assert_close(exported[key].float(), value.float(), rtol=1e-2, atol=1e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path):
    """A tiny recipe run to export, its built checkpoint and the in-process model's greedy answers."""
    from lalm.default_model.evaluate import transcribe_frames
    from lalm.default_model.head import AudioHead
    from lalm.default_model.lm import AudioLM
    from lalm.modeling.trained_weights import build_default_model, read_weights

    root = tmp_path_factory.mktemp("recipe")
    cfg = _config(root, tiny_model)
    run_recipe(cfg, progress=False)
    built = build_default_model(cfg.out, root / "built", base=tiny_model, log=lambda _m: None)
    lm = AudioLM(tiny_model)
    head = AudioHead(lm.config.audio_config, lm.config.text_config.hidden_size, extra_layers=cfg.extra_layers,
                     first_layer=lm.config.audio_config.encoder_layers)
    # the exported (float16) weights, as the build reads them
    _record, tensors = read_weights(cfg.out)
    head.load_from_checkpoint(tensors["head"])
    lm.lora.load_state_dict(tensors["lora"])
    head.eval()
    lm.peft.eval()
    speech = FeatureSet.load(cfg.corpus_dir() / "heldout_speech")
    audio = [sf.read(cfg.corpus_dir() / "heldout_speech/audio" / m["audio"], dtype="float32")[0]
             for m in speech.meta[:2]]
    # frames of the 16-bit FLAC the servers read (the cache holds the float samples' frames)
    encoder = FrozenEncoder.from_checkpoint(tiny_model)
    expected = transcribe_frames(lm, head, [encoder(a) for a in audio], max_new_tokens=12)
    return built, audio, expected


def test_built_checkpoint_answers_like_the_trained_model(trained) -> None:
    from lalm.engines.base import AudioPart, Message, SamplingParams
    from lalm.engines.hf import HFEngine
    from lalm.tasks import get_task

    built, audio, expected = trained

    async def answers() -> list[str]:
        engine = HFEngine(str(built))
        await engine.start()
        try:
            return [(await engine.generate([Message("user", [AudioPart(a), get_task("transcribe").instruction()])],
                                           SamplingParams(temperature=0, max_tokens=12))).text.strip() for a in audio]
        finally:
            await engine.close()

    assert asyncio.run(answers()) == expected


@pytest.mark.vllm
def test_vllm_serves_the_built_checkpoint(trained, tmp_path: Path) -> None:
    from lalm.engines.base import AudioPart, Message, SamplingParams
    from lalm.engines.vllm import VLLMEngine
    from lalm.engines.vllm_process import VLLMProcess
    from lalm.tasks import get_task

    built, audio, expected = trained
    proc = VLLMProcess(str(built), served_model_name="built", dtype="float32", max_model_len=4096,
                       log_path=tmp_path / "vllm.log")
    proc.start(timeout=600)
    try:
        from lalm.modeling.checkpoint import load_processor

        tokenizer = load_processor(built).tokenizer

        async def answers() -> list[str]:
            # token ids, decoded as the in-process model's are: vLLM's incremental detokenizer writes a
            # replacement character for a UTF-8 sequence cut by max_tokens where a whole decode does not
            engine = VLLMEngine("built", upstreams=[proc.url], return_token_ids=True)
            await engine.start()
            try:
                outs = [await engine.generate(
                    [Message("user", [AudioPart(a), get_task("transcribe").instruction()])],
                    SamplingParams(temperature=0, max_tokens=12)) for a in audio]
            finally:
                await engine.close()
            return [tokenizer.decode(list(o.token_ids), skip_special_tokens=True).strip() for o in outs]

        assert asyncio.run(answers()) == expected
    finally:
        proc.stop()
