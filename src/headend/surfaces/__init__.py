"""The APIs clients speak besides chat completions, each translated into the one chat run
and back: Anthropic Messages, OpenAI Responses and legacy Completions. Pure functions and
small stateful translators, no I/O."""
