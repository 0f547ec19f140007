"""Style adapters (LoRA) on the request path: what a request's choice becomes (menu),
visitor-named adapters from the Hub (hub) and their loading at start (startup). The operator's
list is read with the settings (zimage/adapter_catalog.py); the engine's side is
zimage/engine/adapters.py and zimage/engine/lora_files.py."""
