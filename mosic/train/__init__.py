"""Stage 2: MoSiC fine-tuning — training clips and loader, presets, schedules and the training loop."""
