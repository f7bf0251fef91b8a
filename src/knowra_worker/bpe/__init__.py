"""The published BPE files of the tiktoken encodings (package data of knowra_worker.tokens)."""
