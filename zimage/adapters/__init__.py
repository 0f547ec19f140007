"""Style adapters (LoRA): the operator's list (catalog), what a request's choice becomes (menu),
visitor-named adapters from the Hub (hub) and their loading at start (startup). The engine's
side is zimage/engine/adapters.py and zimage/engine/lora_files.py."""
