"""The LLM side: one completion request, the pool of servers, token frames, managed llama-server."""
