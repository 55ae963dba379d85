"""Model card of published TRM checkpoints (installed as `modeling_trm.hub_card`)."""
