"""Parameter-efficient fine-tuning methods, one per module, one registry."""
