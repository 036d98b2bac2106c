"""`python -m gpumetrics` runs the CLI."""

from .cli import main

main()
