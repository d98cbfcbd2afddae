"""AIR-Bench's folder layout: where the meta files and the audio are, and the result-record fields.

The dataset (qyang1021/AIR-Bench-Dataset) unpacks to
    ROOT/Foundation/Foundation_meta.json   ROOT/Foundation/{task_name}_{dataset_name}/{path}
    ROOT/Chat/Chat_meta.json               ROOT/Chat/{task_name}_{dataset_name}/{path}
(Inference_Foundation.py / Inference_Chat.py: `data_path_root = '/Foundation'`, the meta file and the audio
folders inside it). `--root` may name ROOT or the split folder itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CHAT_FIELDS",
    "CHAT_TASKS",
    "FOUNDATION_FIELDS",
    "FOUNDATION_TASKS",
    "SPLITS",
    "Split",
    "audio_path",
    "load_meta",
    "result_record",
    "select",
    "split_dir",
    "task_id",
    "task_sort_key",
]

Split = Literal["foundation", "chat"]
SPLITS: dict[str, tuple[str, str]] = {
    "foundation": ("Foundation", "Foundation_meta.json"),
    "chat": ("Chat", "Chat_meta.json"),
}
# The task_name values of the dataset, misspellings included (they are the real values), in the leaderboard's
# row order; reports list tasks in this order.
FOUNDATION_TASKS = (
    "Speech_Grounding", "Spoken_Language_Identification", "Speaker_Gender_Recognition", "Speaker_Emotion_Recontion",
    "Speaker_Age_Prediction", "Speech_Entity_Reconition", "Speaker_Intent_Classification",
    "Speaker_Number_Verification", "Synthesized_Voice_Detection", "Audio_Grounding", "vocal_sound_classification",
    "Acoustic_Scene_Classification", "Sound_AQA", "Music_Instruments_Classfication", "Music_Genre_Recognition",
    "Music_Midi_Pitch_Analysis", "Music_Midi_Velocity_Analysis", "Music_AQA", "Music_Mood_Recognition",
)
CHAT_TASKS = (
    "speech_QA", "speech_dialogue_QA", "sound_QA", "sound_generation_QA", "music_QA",
    "music_generation_analysis_QA", "speech_and_sound_QA", "speech_and_music_QA",
)
# The result-file fields, in the order Inference_Foundation.py / Inference_Chat.py write them, so scoring
# works on files made by the reference scripts or any tool that follows them.
FOUNDATION_FIELDS = ("path", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer_gt",
                     "task_name", "dataset_name", "response", "uniq_id")
CHAT_FIELDS = ("meta_info", "question", "answer_gt", "path", "task_name", "dataset_name", "response", "uniq_id")


def split_dir(root: str | Path, split: Split) -> Path:
    """The folder holding `split`'s meta file and audio folders: ROOT/Foundation (or ROOT/Chat), or `root`
    itself when it already is that folder."""
    folder, meta = SPLITS[split]
    root = Path(root)
    for candidate in (root / folder, root):
        if (candidate / meta).is_file():
            return candidate
    raise FileNotFoundError(f"no {folder}/{meta} under {root}: point --root at the AIR-Bench folder "
                            f"(the one holding {folder}/) or at {folder}/ itself")


def load_meta(root: str | Path, split: Split) -> list[dict[str, Any]]:
    """The split's items (a JSON array of objects), in file order."""
    path = split_dir(root, split) / SPLITS[split][1]
    items = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON array of items")
    return items


def task_id(item: dict[str, Any]) -> str:
    """`task_name_dataset_name`, the unit score_foundation.py reports accuracy for."""
    return f"{item['task_name']}_{item['dataset_name']}"


def task_sort_key(task_name: str) -> tuple[int, str]:
    """Known tasks in the leaderboard's order, then any others alphabetically."""
    known = FOUNDATION_TASKS + CHAT_TASKS
    return (known.index(task_name) if task_name in known else len(known), task_name)


def audio_path(root: str | Path, split: Split, item: dict[str, Any]) -> Path:
    """Where an item's audio is. Audio_Grounding's meta names .wav files that ship as .flac; the reference
    swaps the last three characters of the path for 'flac' (Inference_Foundation.py), and so do we."""
    rel = f"{task_id(item)}/{item['path']}"
    if split == "foundation" and item["task_name"] == "Audio_Grounding":
        rel = rel[:-3] + "flac"
    return split_dir(root, split) / rel


def select(items: Iterable[dict[str, Any]], tasks: Iterable[str] = (), limit: int | None = None) -> list[dict]:
    """Items whose task_name or task_name_dataset_name is in `tasks` (all when empty), at most `limit`, in
    file order."""
    wanted = set(tasks)
    chosen = [it for it in items if not wanted or it["task_name"] in wanted or task_id(it) in wanted]
    return chosen[:limit] if limit is not None else chosen


def result_record(split: Split, item: dict[str, Any], response: str | None) -> dict[str, Any]:
    """A result line with the reference's fields (missing choices are written as null, like the reference's
    `item.get('choice_c', None)`)."""
    fields = FOUNDATION_FIELDS if split == "foundation" else CHAT_FIELDS
    record = {name: item.get(name) for name in fields}
    record["response"] = response
    return record

