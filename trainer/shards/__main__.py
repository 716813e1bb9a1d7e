"""`python -m trainer.shards SRC OUT ...`."""

from .cli import main

# Guarded: spawn-started encoder workers re-import the parent's main module.
if __name__ == "__main__":
    raise SystemExit(main())
