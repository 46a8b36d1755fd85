"""Fetching files: the hub's model files and llama.cpp's release, resumable and verified."""
