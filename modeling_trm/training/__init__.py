"""Training: `TRMTrainer` (deep supervision, carry, EMA), its optimizers, sample streams, curriculum, learning curves
and one run from a recipe (`recipe_run.train_from_recipe`)."""
