"""Running our own llama-server (managed mode): its binary, sizing, start and supervision."""
