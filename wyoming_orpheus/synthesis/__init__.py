"""One request, end to end: text -> LLM tokens -> frames -> PCM, its slot, its report."""
