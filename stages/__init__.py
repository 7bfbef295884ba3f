"""tunebuild: one module per pipeline stage (see dvc.yaml); shared pieces in stages.lib."""
