"""`python -m lalm.engines.vllm_server ARGS`: vLLM's OpenAI server, `python -m vllm.entrypoints.openai.api_server
ARGS` (what lalm.engines.vllm_process starts), without the leak report it prints at every exit.

vLLM loads triton, whose extension (libtriton, built with nanobind) still holds objects when the interpreter
exits; nanobind then writes a ~30-line "nanobind: leaked ..." report to stderr at each shutdown. The objects
are triton's, so nothing here can release them, and libtriton does not expose nanobind's `set_leak_warnings`.
Triton silences the same report in its own worker processes by pointing stderr at /dev/null at exit; so does
this, after the server has returned and every other exit handler has run: errors while serving, and a
traceback that ends the server, are written as before.
"""

from __future__ import annotations

import atexit
import os
import runpy


def _quiet_stderr() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


if __name__ == "__main__":
    atexit.register(_quiet_stderr)  # registered first, so it runs last
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=True)
