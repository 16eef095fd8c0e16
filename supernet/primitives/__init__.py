"""The search-space primitives, one file each; ``supernet.nn`` is their public face."""
