"""Audio out: PCM helpers (int16, silence, lead-in trimming, tempo), level, encoders."""
