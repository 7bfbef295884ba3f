"""tunebuild: the library behind the pipeline's stages (stages/<verb>.py) and the `tunebuild` command.

Arrows point one way: stages -> tunebuild.tasks -> shared pieces; the command line -> shared pieces.
No module here imports a stage. Keep this package light to import: torch, transformers and peft are
imported inside the functions that need them.
"""
