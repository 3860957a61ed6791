"""Training recipe: data (samples, buckets, batches) for AniSora fine-tuning."""
