"""Task recipes: one JSON file per paper run (model preset, dataset build, training settings).

Installed as `modeling_trm.recipes`; read them with `modeling_trm.recipes_io.load_recipe(name)`.
"""
