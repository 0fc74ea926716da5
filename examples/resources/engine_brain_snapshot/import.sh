# Import a snapshot by its id (see data "engine_brain_snapshots" for the ids of an engine).
terraform import engine_brain_snapshot.pre_240 snap-5f2c0a9e1b7d4c36
