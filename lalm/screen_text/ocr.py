"""Text lines of one video frame, read by RapidOCR (`rapidocr-onnxruntime`, Apache-2.0): PP-OCRv4 text
detection and recognition as ONNX models that ship inside its wheel, run by onnxruntime. Nothing is downloaded
at run time (its 3.x releases fetch models on first use, which is why 1.4.4 is pinned).

Chosen over Tesseract (a system binary and language packs outside the Python environment) and EasyOCR (torch
models downloaded on first use): RapidOCR is a pip dependency with its models inside, and CPU-only."""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = ["OcrLine", "read_lines"]


@dataclass(frozen=True)
class OcrLine:
    """One detected line of text: `text` (NFKC-normalised, spaces collapsed) and the recogniser's
    confidence `score` in [0, 1]."""

    text: str
    score: float


_LOCK = threading.Lock()


@cache
def _engine():
    from rapidocr_onnxruntime import RapidOCR

    # One onnxruntime thread per session: OCR runs beside the gateway's other work on shared cores, and a
    # single thread does the same work with less CPU than a spinning pool (measured here: 0.45 s against
    # 0.58 s of CPU for a 720p slide).
    return RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, print_verbose=False)


def read_lines(image: np.ndarray) -> list[OcrLine]:
    """The text lines in `image`, a (height, width, 3) uint8 BGR frame, top to bottom. Empty when there are
    none. Text orientation classification is off: on-screen text is upright."""
    with _LOCK:  # RapidOCR keeps per-call state on the instance; calls are serialised, not interleaved
        found, _ = _engine()(image, use_cls=False)
    lines = []
    for _box, text, score in found or ():
        clean = " ".join(unicodedata.normalize("NFKC", str(text)).split())
        if clean:
            lines.append(OcrLine(clean, float(score)))
    return lines
