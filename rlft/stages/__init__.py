"""Pipeline stages: one readable file per stage, each with its config dataclass and a ``run(ctx)`` entry point."""
