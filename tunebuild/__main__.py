"""`python -m tunebuild ...` is the `tunebuild` command."""
from tunebuild.cli import main

main()
