"""Task presets in chat completions (the `task` extra field), on short and long audio, both engines.

The prompt a task sends is checked exactly: the usage the gateway reports must equal the token count of the
task's prompt (lalm/prompts/<task>.txt) around the audio window, computed here with the model's own processor."""

from __future__ import annotations

import pytest
from media import encode
from serve_support import input_audio, same_tokens, user

from lalm.audio import decode_audio
from lalm.longform.windows import plan_windows
from lalm.modeling.checkpoint import load_processor
from lalm.tasks import TASKS, get_task

QUESTION = "Who is speaking, and about what?"


@pytest.fixture(scope="module")
def processor(tiny_model):
    return load_processor(tiny_model)


def _window_prompt_tokens(processor, samples, instruction: str, speech_only: bool = False) -> list[int]:
    """Prompt tokens of each window the gateway sends for `samples` with `instruction` (`speech_only`: the
    windows of transcription and translation, cut by the voice-activity detector)."""
    counts = []
    for w in plan_windows(samples, speech_only=speech_only):
        messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": instruction}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        out = processor(text=[text], audio=[samples[w.start:w.end]], sampling_rate=16000)
        counts.append(len(out["input_ids"][0]))
    return counts


def _task(client, samples, task: str | None, text: str | None = QUESTION, max_tokens: int = 12):
    """A chat request running `task` (None: plain chat) on `samples` sent as WAV, with `text`."""
    message = user(input_audio(samples), text) if text else user(input_audio(samples))
    return client.chat.completions.create(model="tiny", messages=[message], temperature=0, max_tokens=max_tokens,
                                          extra_body={"task": task} if task else {})


def _sent(samples):
    """The samples the gateway decodes from `samples` sent as 16-bit WAV."""
    return decode_audio(encode(samples, "wav")).samples


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_sends_its_prompt(gateway, speech, processor, task):
    samples = _sent(speech)
    out = _task(gateway.client(), speech, task)
    instruction = get_task(task).instruction(question=QUESTION)
    speech_only = get_task(task).joins_windows
    assert out.usage.prompt_tokens == sum(_window_prompt_tokens(processor, samples, instruction, speech_only))
    assert isinstance(out.choices[0].message.content, str) and 1 <= out.usage.completion_tokens <= 12


def test_translate_target_language_and_context(gateway, speech, processor):
    samples = _sent(speech)
    fr = gateway.client().chat.completions.create(
        model="tiny", messages=[user(input_audio(speech))], temperature=0, max_tokens=8,
        extra_body={"task": "translate", "language": "French", "context": "Names: Maria, Berlin."})
    instruction = get_task("translate").instruction(language="French", context="Names: Maria, Berlin.")
    assert fr.usage.prompt_tokens == sum(_window_prompt_tokens(processor, samples, instruction, speech_only=True))


def test_long_audio_summary_is_reduced(gateway, long_speech, processor):
    out = _task(gateway.client(), long_speech, "summarize", max_tokens=8)
    windows = _window_prompt_tokens(processor, _sent(long_speech), get_task("summarize").instruction())
    assert len(windows) >= 4
    # every window was sent, plus one text-only reduction call with its own prompt
    assert out.usage.prompt_tokens > sum(windows)
    assert out.usage.prompt_tokens - sum(windows) < 200 + 8 * len(windows)
    assert out.choices[0].message.content is not None


def test_plain_chat_on_long_audio_is_qa(gateway, long_speech):
    client = gateway.client()
    plain = _task(client, long_speech, None, max_tokens=6)
    qa = _task(client, long_speech, "qa", max_tokens=6)
    assert plain.usage.model_dump() == qa.usage.model_dump()
    assert plain.choices[0].message.content == qa.choices[0].message.content
    no_text = _task(client, long_speech, None, text=None, max_tokens=6)
    describe = _task(client, long_speech, "describe", text=None, max_tokens=6)
    assert no_text.usage.model_dump() == describe.usage.model_dump()


def test_transcribe_task_matches_the_transcription_endpoint(gateway, long_speech):
    client = gateway.client()
    via_chat = client.chat.completions.create(model="tiny", temperature=0, extra_body={"task": "transcribe"},
                                              messages=[user(input_audio(long_speech, "flac"))])
    via_endpoint = client.audio.transcriptions.create(model="tiny", file=("a.flac", encode(long_speech, "flac")),
                                                      temperature=0)
    assert via_chat.choices[0].message.content == via_endpoint.text


def test_tasks_vllm_equal_hf(gateway_hf, gateway_vllm, speech):
    # One window each. (On several windows the reduction prompt quotes the windows' random answers, whose
    # invalid UTF-8 the two engines render differently, so only single-window answers compare exactly.)
    for task in TASKS:
        hf = _task(gateway_hf.client(), speech, task, max_tokens=10)
        vllm = _task(gateway_vllm.client(), speech, task, max_tokens=10)
        assert same_tokens(vllm.choices[0].message.content, hf.choices[0].message.content), task
        assert vllm.usage.model_dump() == hf.usage.model_dump(), task
