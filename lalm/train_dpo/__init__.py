"""Training: data manifests, metrics, LoRA SFT, preference pairs, DPO and merging (see DESIGN.md, Training)."""
