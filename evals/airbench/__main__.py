"""`python -m evals.airbench ...`"""

from evals.airbench.cli import app

app(prog_name="python -m evals.airbench")
