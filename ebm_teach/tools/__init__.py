"""Developer tools: keeping notebooks' stored outputs in step with their py:percent sources."""
